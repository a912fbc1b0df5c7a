"""Measure the shape the performance model predicts on the real vLLM CPU engine: ITL against batch, TTFT against prompt.

    .engines/vllm-0.32.0/bin/python tools/engine_shape_sweep.py tests/sizing/data/engine_shape_sweep.json

A random-weight Llama (4 layers, hidden 512, GQA 8/2 heads of 64, vocabulary 1024; no tokenizer, token ids in) is
written offline to a temporary directory and served in-process by vLLM's offline LLM API (CPU build, eager, no prefix caching: every run computes its
whole prompt). ITL at
batch B is the time per extra decode step: (time of B requests x 65 tokens - time of B x 1 token) / 64; TTFT at
prompt length I is the time of one request of I tokens and one output token. Each point is the median of 3 runs.
Only the shape is compared (tests/sizing/test_performance.py): a CPU is not a GPU, and the numbers are not fitted.
Runs in 2 to 4 minutes on 2 shared cores (one engine at a time); the absolute times move with the machine's load,
the shape does not.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time

BATCHES = (1, 4, 16)
PROMPTS = (64, 512, 1536)
CONFIG = dict(vocab_size=1024, hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8,
              num_key_value_heads=2, head_dim=64, max_position_embeddings=2048, tie_word_embeddings=False)


def write_model(out: str) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(torch_dtype="bfloat16", **CONFIG)).to(torch.bfloat16).save_pretrained(out)


def main() -> int:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    with tempfile.TemporaryDirectory() as d:
        write_model(d)
        llm = LLM(model=d, skip_tokenizer_init=True, max_model_len=2048, max_num_seqs=16, enforce_eager=True,
                  enable_prefix_caching=False, dtype="bfloat16", seed=0)

        def timed(batch: int, prompt: int, tokens: int) -> float:
            prompts = [TokensPrompt(prompt_token_ids=[(7 * i + j) % 1000 + 3 for j in range(prompt)]) for i in range(batch)]
            params = SamplingParams(max_tokens=tokens, min_tokens=tokens, ignore_eos=True, detokenize=False)
            runs = []
            for _ in range(3):
                start = time.perf_counter()
                llm.generate(prompts, params, use_tqdm=False)
                runs.append(time.perf_counter() - start)
            return statistics.median(runs) * 1e3

        timed(1, 16, 4)  # warm-up
        itl = {b: (timed(b, 32, 65) - timed(b, 32, 1)) / 64 for b in BATCHES}
        ttft = {i: timed(1, i, 1) for i in PROMPTS}
    import vllm

    result = {"engine": f"vLLM {vllm.__version__} (CPU build, offline LLM API, eager)", "machine": platform.machine(),
              "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"), "model": CONFIG,
              "itl_ms_by_batch": {str(k): round(v, 3) for k, v in itl.items()},
              "ttft_ms_by_prompt": {str(k): round(v, 3) for k, v in ttft.items()}}
    with open(sys.argv[1], "w", encoding="utf-8") as fh:  # a file: vLLM logs to stdout
        json.dump(result, fh, indent=2)
        fh.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
