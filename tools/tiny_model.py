"""Write a tiny random-weight Llama checkpoint and its tokenizer, offline (no download), for the real-engine tests.

    python tools/tiny_model.py OUT_DIR [--no-chat-template]

Two layers, hidden size 64, head size 32 (the smallest vLLM's CPU attention accepts), a byte-level BPE tokenizer
trained here on a few sentences, with Llama-2's special tokens (<s>, </s>, <unk>). With `--no-chat-template` the
tokenizer has no chat template, like the NousResearch Llama-2 mirrors; otherwise it carries a small ChatML-like one.
Runs where torch, transformers and tokenizers are installed (the engine virtualenvs), in a few seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# A template of the tokenizer's own, distinct from the Llama-2 one serving/ ships for tokenizers without any.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '</s>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
SPECIAL = ["<unk>", "<s>", "</s>"]
CORPUS = [
    "The capital of France is Paris.",
    "What is the capital of France?",
    "Hello! How can I help you today?",
    "You are a helpful assistant. Be brief.",
    "[INST] <<SYS>> system <</SYS>> user [/INST] assistant",
    "<|system|> <|user|> <|assistant|> Count to ten: one two three four five six seven eight nine ten.",
    "Tell me a story about a tiny model that runs on two CPU cores.",
]


def write(out: Path, chat_template: bool = True, seed: int = 0, hidden_size: int = 64, layers: int = 2) -> Path:
    """The checkpoint in `out`; `hidden_size` (a multiple of 32: heads of 32) and `layers` make it bigger, so that a
    prefill costs more than the server's own overhead (the routing A/B)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=512, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    ))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>", eos_token="</s>", model_max_length=2048,
        chat_template=CHAT_TEMPLATE if chat_template else None,
    )
    tokenizer.save_pretrained(out)

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=hidden_size // 32, num_key_value_heads=1, head_dim=32,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False,
        torch_dtype="bfloat16",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    # transformers may save the template beside the config instead of in it: drop it too when asked for none.
    if not chat_template:
        (out / "chat_template.jinja").unlink(missing_ok=True)
        cfg = out / "tokenizer_config.json"
        data = json.loads(cfg.read_text())
        data.pop("chat_template", None)
        cfg.write_text(json.dumps(data, indent=2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--no-chat-template", action="store_true")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    print(write(args.out, chat_template=not args.no_chat_template, hidden_size=args.hidden_size, layers=args.layers))


if __name__ == "__main__":
    main()
