"""A deterministic engine for the OpenAI layer's tests: whitespace tokens, a scripted reply, recorded calls."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

from serving.openai_api import Chunk, Sampling


class FakeEngine:
    BOS = 1
    VOCAB_SIZE = 1000

    def __init__(self, reply: str | Callable[[list[dict[str, str]]], str] = "The capital of France is Paris.",
                 max_model_len: int = 64, fail_after: int | None = None):
        self.reply = reply  # a fixed text, or a function of the messages
        self.max_model_len = max_model_len
        self.fail_after = fail_after
        self.requests: list[tuple[str, list[dict[str, str]], Sampling]] = []  # chat
        self.completions: list[tuple[str, list[int], Sampling]] = []  # raw prompts (/v1/completions)
        self.vocab: dict[str, int] = {}
        self.aborted: list[str] = []
        self.is_ready = True
        self.dead: Exception | None = None  # set: ready() raises it, as vLLM's check_health does once the engine died

    async def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        # A chat template adds a few tokens per message; words stand in for tokens.
        return sum(len(m["content"].split()) + 2 for m in messages) + 1

    async def generate(self, request_id: str, messages: list[dict[str, str]], sampling: Sampling) -> AsyncIterator[Chunk]:
        self.requests.append((request_id, messages, sampling))
        prompt = await self.prompt_tokens(messages)
        reply = self.reply(messages) if callable(self.reply) else self.reply
        async for chunk in self._stream(reply, prompt, sampling):
            yield chunk

    async def encode(self, prompt: str, add_special_tokens: bool = True) -> list[int]:
        # One token per word (its position in a growing vocabulary), after a BOS (id 1) unless told not to add it.
        ids = [self.vocab.setdefault(word, len(self.vocab) + 2) for word in prompt.split()]
        return ([self.BOS] if add_special_tokens else []) + ids

    async def complete(self, request_id: str, prompt_ids: list[int], sampling: Sampling) -> AsyncIterator[Chunk]:
        self.completions.append((request_id, list(prompt_ids), sampling))
        if max(prompt_ids) >= self.VOCAB_SIZE:  # what vLLM's input processor raises, before any output
            raise ValueError(f"Token id {max(prompt_ids)} is out of vocabulary")
        words = {v: k for k, v in self.vocab.items()}
        prompt = [{"role": "user", "content": " ".join(words.get(i, "?") for i in prompt_ids if i != self.BOS)}]
        reply = self.reply(prompt) if callable(self.reply) else self.reply
        async for chunk in self._stream(reply, len(prompt_ids), sampling):
            yield chunk

    async def _stream(self, reply: str, prompt: int, sampling: Sampling) -> AsyncIterator[Chunk]:
        """The reply word by word (one word, one token); with ignore_eos, the reply again and again up to max_tokens."""
        words = reply.split(" ")
        total = sampling.max_tokens if sampling.ignore_eos else min(len(words), sampling.max_tokens)
        text = ""
        for i in range(total):
            if self.fail_after is not None and i == self.fail_after:
                raise RuntimeError("device lost")
            await asyncio.sleep(0)
            piece = words[i % len(words)] if i == 0 else " " + words[i % len(words)]
            if any(stop in text + piece for stop in sampling.stop):
                yield Chunk("", prompt, i, "stop")
                return
            text += piece
            last = i + 1 == total
            finish = None if not last else ("length" if i + 1 == sampling.max_tokens and (
                sampling.ignore_eos or i + 1 < len(words)) else "stop")
            yield Chunk(piece, prompt, i + 1, finish)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    async def ready(self) -> bool:
        if self.dead is not None:
            raise self.dead
        return self.is_ready
