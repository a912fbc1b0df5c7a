"""An OpenAI-compatible HTTP API over a text-generation engine.

`GET /v1/models`, `POST /v1/chat/completions` and `POST /v1/completions` (JSON, or server-sent events with
`stream: true`) and `GET /health`, answering in the shapes and error format the `openai` client expects. The engine
sits behind a small interface (`Engine`): vLLM on Neuron in the pod (serving/vllm_engine.py), a fake in the tests.

`/v1/completions` takes a raw prompt (text, or token ids, as the OpenAI API allows) with no chat template, and the
fields inference-perf 0.7.0 sends (max_tokens, stream, stream_options.include_usage, and vLLM's ignore_eos and
add_special_tokens), so the benchmark controls prompt and output token counts exactly.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Annotated, Any, AsyncIterator, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    """Engine-neutral sampling parameters of one request."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    ignore_eos: bool = False  # vLLM's extension: generate max_tokens whatever the model's end-of-sequence token says


@dataclass
class Chunk:
    """What the engine yields as it generates: the new text, and counts so far."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None  # "stop" | "length" on the last chunk


class Engine(Protocol):
    max_model_len: int

    async def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens of the prompt the chat template makes of `messages`."""

    def generate(self, request_id: str, messages: list[dict[str, str]], sampling: Sampling) -> AsyncIterator[Chunk]:
        """Stream the completion of `messages`."""

    async def encode(self, prompt: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of a raw text prompt, no chat template (`add_special_tokens`: the tokenizer's BOS and the like)."""

    def complete(self, request_id: str, prompt_ids: list[int], sampling: Sampling) -> AsyncIterator[Chunk]:
        """Stream the continuation of `prompt_ids`, taken as they are. An invalid prompt (a token id out of the
        vocabulary) raises ValueError before the first chunk, as vLLM's engine does."""

    async def abort(self, request_id: str) -> None:
        """Stop generating for a client that went away."""

    async def ready(self) -> bool:
        """True once the model is loaded (Neuron: compiled) and the engine alive; may raise once it is dead."""


# --- the request, as the OpenAI API defines it (unknown fields ignored, as the API does) -------------------------


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text or "" for p in self.content if p.type == "text")


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float = Field(default=0.0, ge=-2, le=2)
    frequency_penalty: float = Field(default=0.0, ge=-2, le=2)
    ignore_eos: bool = False  # vLLM's extension (inference-perf sends it with chat requests too)


class CompletionRequest(BaseModel):
    """The legacy completions API (https://platform.openai.com/docs/api-reference/completions/create): one prompt,
    text or token ids (a one-element array of either is the same prompt), plus vLLM's ignore_eos and
    add_special_tokens. Fields that would change the response's shape (n, best_of, echo, logprobs, suffix) are
    refused unless left at their defaults; other unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str
    prompt: str | list[Annotated[int, Field(ge=0)]] | list[str] | list[list[Annotated[int, Field(ge=0)]]]
    max_tokens: int | None = Field(default=16, ge=1)  # the OpenAI API's default, and vLLM's
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    n: int = 1
    best_of: int | None = None
    echo: bool = False
    logprobs: int | None = None
    suffix: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float = Field(default=0.0, ge=-2, le=2)
    frequency_penalty: float = Field(default=0.0, ge=-2, le=2)
    ignore_eos: bool = False
    add_special_tokens: bool = True


def _validation_error(exc: ValidationError) -> JSONResponse:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"]]
    if loc and loc[0] == "prompt" and first["type"] != "missing":  # a union: pydantic names each member it tried
        return error(400, "prompt: must be a string or an array of token ids (integers >= 0)", param="prompt")
    param = ".".join(loc) or None
    return error(400, f"{param}: {first['msg']}" if param else first["msg"], param=param)


def error(status: int, message: str, param: str | None = None, code: str | None = None,
          kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status)


@dataclass
class OpenAIServer:
    engine: Engine
    served_model_name: str
    created: int = field(default_factory=lambda: int(time.time()))

    async def handle(self, request: Request) -> Response:
        """Route one HTTP request (used by the Ray Serve deployment and by the local Starlette app)."""
        path, method = request.url.path.rstrip("/"), request.method
        if path == "/v1/chat/completions" and method == "POST":
            try:
                body = await request.json()
            except ValueError:
                return error(400, "the request body is not valid JSON")
            return await self.chat_completions(body)
        if path == "/v1/completions" and method == "POST":
            try:
                body = await request.json()
            except ValueError:
                return error(400, "the request body is not valid JSON")
            return await self.completions(body)
        if path == "/v1/models" and method == "GET":
            return JSONResponse(self.models())
        if path == "/health" and method == "GET":
            try:
                ok = await self.engine.ready()
            except Exception as exc:  # noqa: BLE001 - a dead engine raises (vLLM: EngineDeadError): unhealthy, not a 500
                return error(503, f"the engine is not healthy: {type(exc).__name__}: {exc}", kind="server_error")
            return Response(status_code=200 if ok else 503)
        if path in ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health"):
            return error(405, f"{method} is not allowed on {path}")
        return error(404, f"no route {method} {path}", code="not_found")

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{
            "id": self.served_model_name, "object": "model", "created": self.created, "owned_by": "llm-eks",
            "max_model_len": self.engine.max_model_len,
        }]}

    async def chat_completions(self, body: Any) -> Response:
        try:
            req = ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            return _validation_error(exc)
        if req.model != self.served_model_name:
            return self._no_such_model(req.model)
        if req.n != 1:
            return error(400, "only n=1 is supported", param="n")
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages]
        prompt = await self.engine.prompt_tokens(messages)
        sampling = self._sampling(req, prompt, req.max_completion_tokens or req.max_tokens, "messages")
        if isinstance(sampling, Response):
            return sampling
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(self._events(request_id, messages, sampling, include_usage),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        text, last = [], None
        try:
            async for chunk in self.engine.generate(request_id, messages, sampling):
                text.append(chunk.text)
                last = chunk
        except Exception as exc:  # noqa: BLE001 - the engine's failure becomes an API error, not a dropped socket
            await self._abort(request_id)
            return error(500, f"generation failed: {exc}", kind="server_error")
        return JSONResponse({
            "id": request_id, "object": "chat.completion", "created": int(time.time()), "model": self.served_model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(text)},
                         "finish_reason": (last.finish_reason if last else None) or "stop", "logprobs": None}],
            "usage": _usage(last, prompt),
        })

    async def _events(self, request_id: str, messages: list[dict[str, str]], sampling: Sampling,
                      include_usage: bool) -> AsyncIterator[str]:
        created = int(time.time())

        def event(delta: dict[str, Any], finish: str | None = None, usage: dict | None = None, choices: bool = True) -> str:
            payload = {"id": request_id, "object": "chat.completion.chunk", "created": created,
                       "model": self.served_model_name,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}] if choices else []}
            if usage is not None:
                payload["usage"] = usage
            return f"data: {json.dumps(payload)}\n\n"

        async def events() -> AsyncIterator[str]:
            last: Chunk | None = None
            yield event({"role": "assistant", "content": ""})
            async for chunk in self.engine.generate(request_id, messages, sampling):
                last = chunk
                if chunk.text:
                    yield event({"content": chunk.text})
            yield event({}, finish=(last.finish_reason if last else None) or "stop")
            if include_usage:
                yield event({}, usage=_usage(last, 0), choices=False)

        async with aclosing(self._server_sent(request_id, events())) as lines:
            async for line in lines:
                yield line

    def _sampling(self, req: Any, prompt_tokens: int, wanted: int | None, where: str) -> Sampling | Response:
        """The request's sampling parameters, or the OpenAI error when the prompt and the completion it asks for
        exceed the context (`where`: the request field that holds the prompt)."""
        limit = self.engine.max_model_len
        if prompt_tokens >= limit or (wanted and prompt_tokens + wanted > limit):
            return error(400, f"This model's maximum context length is {limit} tokens. However, you requested "
                              f"{prompt_tokens + (wanted or 0)} tokens ({prompt_tokens} in the {where}, "
                              f"{wanted or 0} in the completion).", param=where, code="context_length_exceeded")
        stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
        return Sampling(
            max_tokens=wanted or limit - prompt_tokens, temperature=req.temperature, top_p=req.top_p, stop=stop,
            seed=req.seed, presence_penalty=req.presence_penalty, frequency_penalty=req.frequency_penalty,
            ignore_eos=req.ignore_eos,
        )

    async def _server_sent(self, request_id: str, events: AsyncIterator[str]) -> AsyncIterator[str]:
        """`events`, then [DONE]; an engine failure is told in-band (the HTTP status is already sent), and a stream
        that does not finish (the client went away, or the engine failed) frees its sequence slot."""
        finished = False
        try:
            async with aclosing(events):
                async for event in events:
                    yield event
            yield "data: [DONE]\n\n"
            finished = True
        except Exception as exc:  # noqa: BLE001
            yield f"data: {json.dumps({'error': {'message': f'generation failed: {exc}', 'type': 'server_error'}})}\n\n"
        finally:
            if not finished:
                await self._abort(request_id)

    def _no_such_model(self, model: str) -> JSONResponse:
        return error(404, f"The model `{model}` does not exist. This server serves `{self.served_model_name}`.",
                     param="model", code="model_not_found")

    async def completions(self, body: Any) -> Response:
        try:
            req = CompletionRequest.model_validate(body)
        except ValidationError as exc:
            return _validation_error(exc)
        if req.model != self.served_model_name:
            return self._no_such_model(req.model)
        for name, allowed in (("n", (1,)), ("best_of", (None, 1)), ("echo", (False,)), ("logprobs", (None,)),
                              ("suffix", (None,))):
            if getattr(req, name) not in allowed:
                return error(400, f"{name}={getattr(req, name)!r} is not supported by this server", param=name)
        prompt = req.prompt
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
            if len(prompt) != 1:
                return error(400, f"one prompt per request: got a batch of {len(prompt)}", param="prompt")
            prompt = prompt[0]
        if isinstance(prompt, str):
            prompt_ids = await self.engine.encode(prompt, add_special_tokens=req.add_special_tokens)
        else:
            prompt_ids = list(prompt)
        if not prompt_ids:
            return error(400, "the prompt is empty", param="prompt")
        n = len(prompt_ids)
        sampling = self._sampling(req, n, req.max_tokens, "prompt")
        if isinstance(sampling, Response):
            return sampling
        request_id = f"cmpl-{uuid.uuid4().hex}"
        stream = self.engine.complete(request_id, prompt_ids, sampling)
        # The first chunk decides the status, as in vLLM's server: a prompt the engine refuses (ValueError: a token id
        # out of the vocabulary) is a 400, before any event is sent.
        try:
            first: Chunk | None = await stream.__anext__()
        except StopAsyncIteration:
            first = None
        except ValueError as exc:
            await self._abort(request_id)
            return error(400, str(exc), param="prompt")
        except BaseException as exc:  # noqa: BLE001 - includes the cancellation of a client that left
            await self._abort(request_id)
            if not isinstance(exc, Exception):
                raise
            return error(500, f"generation failed: {exc}", kind="server_error")
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(self._completion_events(request_id, first, stream, n, include_usage),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        text, last = [], first
        try:
            if first is not None:
                text.append(first.text)
                async for chunk in stream:
                    text.append(chunk.text)
                    last = chunk
        except Exception as exc:  # noqa: BLE001 - the engine's failure becomes an API error, not a dropped socket
            await self._abort(request_id)
            return error(500, f"generation failed: {exc}", kind="server_error")
        return JSONResponse({
            "id": request_id, "object": "text_completion", "created": int(time.time()), "model": self.served_model_name,
            "choices": [{"index": 0, "text": "".join(text), "logprobs": None,
                         "finish_reason": (last.finish_reason if last else None) or "stop"}],
            "usage": _usage(last, n),
        })

    async def _completion_events(self, request_id: str, first: Chunk | None, stream: AsyncIterator[Chunk],
                                 prompt_tokens: int, include_usage: bool) -> AsyncIterator[str]:
        """SSE chunks of `text_completion` objects: each carries the new text, the last one the finish reason (as
        vLLM's server and OpenAI send them); then the usage chunk (`choices: []`) if asked for, then [DONE]."""
        created = int(time.time())

        def event(text: str, finish: str | None = None, usage: dict | None = None) -> str:
            payload = {"id": request_id, "object": "text_completion", "created": created,
                       "model": self.served_model_name,
                       "choices": [] if usage is not None else
                       [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}
            if usage is not None:
                payload["usage"] = usage
            return f"data: {json.dumps(payload)}\n\n"

        async def events() -> AsyncIterator[str]:
            last: Chunk | None = None
            if first is not None:
                last = first
                if first.text or first.finish_reason:
                    yield event(first.text, first.finish_reason)
                async for chunk in stream:
                    last = chunk
                    if chunk.text or chunk.finish_reason:
                        yield event(chunk.text, chunk.finish_reason)
            if last is None or not last.finish_reason:
                yield event("", "stop")
            if include_usage:
                yield event("", usage=_usage(last, prompt_tokens))

        async with aclosing(self._server_sent(request_id, events())) as lines:
            async for line in lines:
                yield line

    async def _abort(self, request_id: str) -> None:
        """Abort without masking the reason we abort: a dead engine raises from abort() too (vLLM: EngineDeadError)."""
        try:
            await self.engine.abort(request_id)
        except Exception as exc:  # noqa: BLE001
            log.warning("aborting %s failed: %s: %s", request_id, type(exc).__name__, exc)


def _usage(last: Chunk | None, prompt: int) -> dict[str, int]:
    prompt_tokens = last.prompt_tokens if last else prompt
    completion = last.completion_tokens if last else 0
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion}


def build_app(server: OpenAIServer) -> Starlette:
    """A plain ASGI app around the server, for local runs and tests (the pod runs it inside Ray Serve)."""

    async def endpoint(request: Request) -> Response:
        return await server.handle(request)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])])
