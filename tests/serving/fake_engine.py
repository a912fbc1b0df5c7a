"""A deterministic engine for the OpenAI layer's tests: whitespace tokens, a scripted reply, recorded calls."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

from serving.openai_api import Chunk, Sampling


class FakeEngine:
    def __init__(self, reply: str | Callable[[list[dict[str, str]]], str] = "The capital of France is Paris.",
                 max_model_len: int = 64, fail_after: int | None = None):
        self.reply = reply  # a fixed text, or a function of the messages
        self.max_model_len = max_model_len
        self.fail_after = fail_after
        self.requests: list[tuple[str, list[dict[str, str]], Sampling]] = []
        self.aborted: list[str] = []
        self.is_ready = True
        self.dead: Exception | None = None  # set: ready() raises it, as vLLM's check_health does once the engine died

    async def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        # A chat template adds a few tokens per message; words stand in for tokens.
        return sum(len(m["content"].split()) + 2 for m in messages) + 1

    async def generate(self, request_id: str, messages: list[dict[str, str]], sampling: Sampling) -> AsyncIterator[Chunk]:
        self.requests.append((request_id, messages, sampling))
        prompt = await self.prompt_tokens(messages)
        words = (self.reply(messages) if callable(self.reply) else self.reply).split(" ")
        text = ""
        for i, word in enumerate(words):
            if self.fail_after is not None and i == self.fail_after:
                raise RuntimeError("device lost")
            await asyncio.sleep(0)
            piece = word if i == 0 else " " + word
            if any(stop in text + piece for stop in sampling.stop):
                yield Chunk("", prompt, i, "stop")
                return
            text += piece
            last = i + 1 == len(words) or i + 1 == sampling.max_tokens
            finish = None if not last else ("length" if i + 1 == sampling.max_tokens and i + 1 < len(words) else "stop")
            yield Chunk(piece, prompt, i + 1, finish)
            if last:
                return

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    async def ready(self) -> bool:
        if self.dead is not None:
            raise self.dead
        return self.is_ready
