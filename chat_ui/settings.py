"""The chat app's settings and the one set of environment-variable names that carries them.

components/gradio_ui.py writes these variables; chat_ui/gradio_app.py reads them in the pod. Both use this module
(standard library only, so the Pulumi program imports it without Gradio), the pattern serving/settings.py sets for
the Ray Serve app, so a name cannot differ between the manifest and the code that reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

DEFAULT_TITLE = "llm-eks chat"
# Each setting's variable. GRADIO_SERVER_NAME and GRADIO_SERVER_PORT are Gradio's own names for the address and port
# (gradio.networking), kept so a plain `gradio` launch reads them too.
ENV_NAMES = {
    "base_url": "LLM_EKS_OPENAI_BASE_URL",
    "model": "LLM_EKS_MODEL",
    "title": "LLM_EKS_TITLE",
    "max_tokens": "LLM_EKS_MAX_TOKENS",
    "system_prompt": "LLM_EKS_SYSTEM_PROMPT",
    "api_key": "LLM_EKS_API_KEY",
    "timeout_s": "LLM_EKS_TIMEOUT_S",
    "server_name": "GRADIO_SERVER_NAME",
    "server_port": "GRADIO_SERVER_PORT",
}
EXAMPLES = {  # shown when a required variable is missing
    "base_url": "http://<service>.<namespace>.svc.cluster.local:8000/v1",
    "model": "the served model name, e.g. meta-llama/Llama-2-13b-chat-hf",
}
MAX_PORT = 65535


@dataclass(frozen=True)
class Settings:
    """Everything the app needs, read once at start so a bad manifest fails before serving."""

    base_url: str
    model: str
    title: str = DEFAULT_TITLE
    max_tokens: int = 512
    system_prompt: str | None = None
    api_key: str = "EMPTY"
    # Read timeout of one reply; the plan adds the wake-up of a model that scales to zero (plan/stack.py ChatTarget).
    timeout_s: int = 300
    # Loopback unless told: a local run is not exposed to the network; the pod's manifest binds all interfaces.
    server_name: str = "127.0.0.1"
    server_port: int = 7860


def _int_env(env: Mapping[str, str], name: str, default: int, high: int | None = None) -> int:
    """A positive integer variable; a typo in a manifest must name the variable, not raise a bare int() error."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1 or (high is not None and value > high):
        limit = f" between 1 and {high}" if high else " (>= 1)"
        raise ValueError(f"{name} must be an integer{limit}, got {raw!r}")
    return value


def to_env(settings: Settings) -> dict[str, str]:
    """The variables a manifest sets for `settings`: every one that has a value, so the manifest states them all."""
    values = {f.name: getattr(settings, f.name) for f in fields(Settings)}
    return {ENV_NAMES[name]: str(value) for name, value in values.items() if value is not None}


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Build Settings from the manifest's variables; a missing required one is a one-line ValueError naming it."""
    names = ENV_NAMES
    for field, example in EXAMPLES.items():
        if not env.get(names[field], "").strip():
            raise ValueError(f"{names[field]} is required (e.g. {example})")
    return Settings(
        base_url=env[names["base_url"]].strip(),
        model=env[names["model"]].strip(),
        title=env.get(names["title"], "").strip() or DEFAULT_TITLE,
        max_tokens=_int_env(env, names["max_tokens"], 512),
        system_prompt=env.get(names["system_prompt"], "").strip() or None,
        api_key=env.get(names["api_key"], "").strip() or "EMPTY",
        timeout_s=_int_env(env, names["timeout_s"], 300),
        server_name=env.get(names["server_name"], "").strip() or "127.0.0.1",
        server_port=_int_env(env, names["server_port"], 7860, high=MAX_PORT),
    )
