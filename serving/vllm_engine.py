"""The `Engine` the OpenAI layer talks to, backed by vLLM (on Neuron through the vllm-neuron plugin).

Only stable vLLM entry points are used (AsyncEngineArgs, SamplingParams, the async engine's generate/abort/
check_health and its tokenizer; chat prompts go through the tokenizer's chat template, completion prompts as they are), so the OpenAI layer does not depend on vLLM's own server classes, which move between
releases. vLLM is imported when the engine is built, in the Neuron worker; the Ray head imports this module without it.
The suite runs this class against the real vLLM 0.16 engine on CPU (tests/engine/).
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any, AsyncIterator

from .compile_cache import ENV as COMPILE_CACHE, restore as restore_compiled, save as save_compiled
from .openai_api import Chunk, Sampling
from .settings import EngineSettings

log = logging.getLogger(__name__)

# Shipped beside this module (and in the serve app's ConfigMap): used when the tokenizer has no chat template.
LLAMA2_CHAT_TEMPLATE = Path(__file__).with_name("llama2_chat.jinja")
# Files neither vLLM nor vllm-neuron reads when safetensors are there: NousResearch's Llama-2 mirrors ship both
# .safetensors and .bin (twice the download), Meta's repos an original/ consolidated .pth as large as the weights.
_NOT_LOADED = ["original/*", "*.gguf", "*.onnx", "*.msgpack", "*.h5", "*.ot", "*.tflite"]
_PICKLED = ["*.bin", "*.pt", "*.pth"]


def checkpoint_dir(settings: EngineSettings) -> str:
    """The local directory vLLM loads: `settings.model` itself if it is one, else its Hub snapshot under download_dir.

    vllm-neuron's loader, given a Hub id, writes a float32 copy of the weights under ./local-models in the working
    directory (outside /data and the disk plan); given a local path it reads that path. The token, endpoint and
    offline mode come from the environment (HF_TOKEN, HF_HUB_OFFLINE), as for vLLM itself.
    """
    if Path(settings.model).is_dir():
        return settings.model
    from huggingface_hub import HfApi, snapshot_download

    ignore = list(_NOT_LOADED)
    try:
        files = HfApi().list_repo_files(settings.model)
    except Exception:  # noqa: BLE001 - offline or Hub unreachable: snapshot_download decides (a complete local copy serves)
        files = None
    if files is None or any(f.endswith(".safetensors") for f in files):
        ignore += _PICKLED
    target = Path(settings.download_dir) / settings.model
    log.info("downloading %s into %s", settings.model, target)
    return snapshot_download(repo_id=settings.model, local_dir=str(target), ignore_patterns=ignore)


def engine_kwargs(settings: EngineSettings, model_path: str) -> dict[str, Any]:
    """vLLM's AsyncEngineArgs for these settings (tests/engine/ builds them with the pinned vLLM)."""
    return dict(
        model=model_path,
        served_model_name=[settings.served_model_name],
        tensor_parallel_size=settings.tensor_parallel_size,
        max_num_seqs=settings.max_num_seqs,
        max_model_len=settings.max_model_len,
        block_size=settings.block_size,
        dtype=settings.dtype,
        enable_prefix_caching=settings.enable_prefix_caching,
    )


class VLLMEngine:
    def __init__(self, settings: EngineSettings):
        from vllm import AsyncEngineArgs

        try:  # vLLM >= 0.10: the v1 engine
            from vllm.v1.engine.async_llm import AsyncLLM as AsyncEngine
        except ImportError:  # pragma: no cover - older releases
            from vllm import AsyncLLMEngine as AsyncEngine

        self.max_model_len = settings.max_model_len
        self.model_path = checkpoint_dir(settings)
        # The Neuron compile cache on S3 (serving/compile_cache.py): reload a compiled model, or save the one made here.
        cache, artifacts = os.environ.get(COMPILE_CACHE), os.environ.get("NEURON_COMPILED_ARTIFACTS")
        restored = bool(cache and artifacts) and restore_compiled(cache, artifacts)
        self._engine = AsyncEngine.from_engine_args(AsyncEngineArgs(**engine_kwargs(settings, self.model_path)))
        if cache and artifacts and not restored:
            save_compiled(cache, artifacts)  # the engine is up: its compiled model is complete
        self._tokenizer = None
        self._template: str | None = None

    async def _tok(self):
        if self._tokenizer is None:
            # A plain method in vLLM 0.16 and 0.19 (AsyncLLM.get_tokenizer), a coroutine in older releases.
            tokenizer = self._engine.get_tokenizer()
            self._tokenizer = await tokenizer if inspect.isawaitable(tokenizer) else tokenizer
            if not getattr(self._tokenizer, "chat_template", None):
                log.warning("the tokenizer has no chat template: using Llama-2's (%s)", LLAMA2_CHAT_TEMPLATE.name)
                self._template = LLAMA2_CHAT_TEMPLATE.read_text(encoding="utf-8")
        return self._tokenizer

    async def _prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        tokenizer = await self._tok()
        # Render, then tokenize without adding special tokens: what apply_chat_template(tokenize=True) does, without
        # its return type (a list in transformers 4, a BatchEncoding in 5).
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             chat_template=self._template)
        return list(tokenizer.encode(text, add_special_tokens=False))

    async def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        return len(await self._prompt_ids(messages))

    async def generate(self, request_id: str, messages: list[dict[str, str]], sampling: Sampling) -> AsyncIterator[Chunk]:
        async for chunk in self._generate(request_id, await self._prompt_ids(messages), sampling):
            yield chunk

    async def encode(self, prompt: str, add_special_tokens: bool = True) -> list[int]:
        """A raw prompt's token ids, no chat template: what vLLM's /v1/completions feeds the engine (its
        add_special_tokens defaults to true there too: Llama's tokenizer then adds the BOS)."""
        tokenizer = await self._tok()
        return list(tokenizer.encode(prompt, add_special_tokens=add_special_tokens))

    async def complete(self, request_id: str, prompt_ids: list[int], sampling: Sampling) -> AsyncIterator[Chunk]:
        # vLLM's input processor checks the ids (out of the vocabulary: ValueError) when the request is added, that
        # is before the first output: the OpenAI layer turns that into a 400.
        async for chunk in self._generate(request_id, list(prompt_ids), sampling):
            yield chunk

    async def _generate(self, request_id: str, prompt_ids: list[int], sampling: Sampling) -> AsyncIterator[Chunk]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            max_tokens=sampling.max_tokens, temperature=sampling.temperature, top_p=sampling.top_p,
            stop=list(sampling.stop) or None, seed=sampling.seed, presence_penalty=sampling.presence_penalty,
            frequency_penalty=sampling.frequency_penalty, ignore_eos=sampling.ignore_eos,
            output_kind=RequestOutputKind.DELTA,
        )
        completion = 0
        async for out in self._engine.generate({"prompt_token_ids": prompt_ids}, params, request_id):
            piece = out.outputs[0]
            completion += len(piece.token_ids)
            yield Chunk(text=piece.text, prompt_tokens=len(prompt_ids), completion_tokens=completion,
                        finish_reason=piece.finish_reason)

    async def abort(self, request_id: str) -> None:
        await self._engine.abort(request_id)

    async def ready(self) -> bool:
        """True while the engine serves; once it is dead, the engine's own error (vLLM: EngineDeadError) propagates,
        so Ray Serve's health check fails and the replica restarts."""
        await self._engine.check_health()
        return True
