"""Gradio chat UI for an OpenAI-compatible endpoint (vLLM, Ray Serve), configured only by environment variables.

Run in the cluster as `python -m chat_ui.gradio_app`; the Kubernetes manifests set the variables chat_ui/settings.py
names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import gradio as gr
import openai
from openai import OpenAI

from chat_ui.settings import DEFAULT_TITLE, Settings, settings_from_env  # noqa: F401  (the app's public names)

Respond = Callable[[str, list[Any]], Iterator[str]]


def _text_of(content: Any) -> str:
    """Gradio 6 hands content over as a list of parts; keep the text ones, since the endpoint takes text only."""
    if isinstance(content, str):
        return content
    parts = [content] if isinstance(content, Mapping) else content if isinstance(content, (list, tuple)) else []
    return "\n".join(p["text"] for p in parts
                     if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str))


def to_openai_messages(message: Any, history: list[Any], system_prompt: str | None) -> list[dict[str, str]]:
    """Turn Gradio's (message, history) into OpenAI chat messages; media-only turns are dropped, not sent empty."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for entry in history:
        if isinstance(entry, Mapping) and entry.get("role") in ("user", "assistant"):
            text = _text_of(entry.get("content"))
            if text:
                messages.append({"role": str(entry["role"]), "content": text})
    text = _text_of(message.get("text", "") if isinstance(message, Mapping) and "type" not in message else message)
    messages.append({"role": "user", "content": text})
    return messages


def _status_detail(err: openai.APIStatusError) -> str:
    """vLLM and Ray Serve put the reason in {"error": {"message"}} or {"detail"}; show that, not the whole body."""
    body = err.body
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping):
            inner = inner.get("message")
        detail = inner or body.get("message") or body.get("detail")
        if detail:
            return str(detail)
    return err.response.text[:300] or err.response.reason_phrase


def make_respond(settings: Settings, client: OpenAI) -> Respond:
    """The function ChatInterface calls: a generator, so Gradio streams the growing reply into the chat."""

    def respond(message: str, history: list[Any]) -> Iterator[str]:
        reply = ""
        try:
            stream = client.chat.completions.create(
                model=settings.model, max_tokens=settings.max_tokens, stream=True,
                messages=to_openai_messages(message, history, settings.system_prompt),  # type: ignore[arg-type]
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    reply += chunk.choices[0].delta.content
                    yield reply
        except openai.APIStatusError as err:
            yield f"{reply}\n\n⚠️ The model endpoint answered HTTP {err.status_code}: {_status_detail(err)}".lstrip()
        except openai.APIConnectionError as err:  # refused, DNS, timeout: say where we tried to go
            cause = f" ({err.__cause__})" if err.__cause__ else ""
            yield f"{reply}\n\n⚠️ Could not reach the model endpoint at {settings.base_url}: {err}{cause}".lstrip()
        except openai.OpenAIError as err:  # e.g. an error event in the middle of the stream
            yield f"{reply}\n\n⚠️ The model endpoint reported an error: {err}".lstrip()
        else:
            if not reply:
                yield "(the model returned an empty reply)"

    return respond


def build_app(settings: Settings, client: OpenAI | None = None) -> gr.Blocks:
    """The chat page; `client` is injectable so tests can point it anywhere."""
    client = client or OpenAI(base_url=settings.base_url, api_key=settings.api_key,
                              timeout=openai.Timeout(float(settings.timeout_s), connect=10.0), max_retries=1)
    return gr.ChatInterface(
        make_respond(settings, client),
        title=settings.title,
        description=f"Model: `{settings.model}`",
        api_name="chat",
        analytics_enabled=False,  # the cluster has no reason to phone home
        concurrency_limit=None,  # Gradio's default of 1 would serialise all users; the model server batches
    )


def main() -> None:
    """Entry point: binds the address the settings name (loopback by default; the pod's manifest says 0.0.0.0)."""
    try:
        settings = settings_from_env(os.environ)
    except ValueError as err:
        raise SystemExit(f"chat_ui: {err}") from None
    build_app(settings).launch(server_name=settings.server_name, server_port=settings.server_port)


if __name__ == "__main__":
    main()
