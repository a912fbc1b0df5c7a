"""chat_ui.gradio_app: configuration, Gradio 6 history handling, a streamed round trip, and a real browser chat."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from gradio.components.chatbot import Chatbot, ChatbotDataMessages
from openai import OpenAI

from chat_ui import gradio_app
from chat_ui.gradio_app import Settings, build_app, settings_from_env, to_openai_messages
from tests.chat_ui.openai_standin import REPLY_PREFIX, StandIn, running_standin

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")  # pandas 3 deprecations inside Gradio
REQUIRED = {"LLM_EKS_OPENAI_BASE_URL": "http://llama2-13b.llama2-13b.svc.cluster.local:8000/v1",
            "LLM_EKS_MODEL": "meta-llama/Llama-2-13b-chat-hf"}


@pytest.fixture(autouse=True)
def no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with running_standin() as state:
        yield state


def settings_for(state: StandIn, **extra: str) -> Settings:
    return settings_from_env({"LLM_EKS_OPENAI_BASE_URL": state.base_url, "LLM_EKS_MODEL": state.models[0], **extra})


def gradio_history(*turns: dict[str, Any]) -> list[dict[str, Any]]:
    """History exactly as Gradio 6 hands it to the chat function: run through Chatbot.preprocess itself."""
    return Chatbot().preprocess(ChatbotDataMessages.model_validate(list(turns)))


def text(t: str) -> dict[str, str]:
    return {"type": "text", "text": t}


IMAGE_PART = {"type": "file", "file": {"path": "/tmp/cat.png", "meta": {"_type": "gradio.FileData"}}, "alt_text": None}


# --- settings_from_env -------------------------------------------------------------------------------------------

def test_settings_defaults() -> None:
    s = settings_from_env(REQUIRED)
    assert s == Settings(base_url=REQUIRED["LLM_EKS_OPENAI_BASE_URL"], model=REQUIRED["LLM_EKS_MODEL"],
                         title="llm-eks chat", max_tokens=512, system_prompt=None, api_key="EMPTY", server_port=7860)


def test_settings_all_set_and_frozen() -> None:
    s = settings_from_env({**REQUIRED, "LLM_EKS_TITLE": "Llama 2 13B", "LLM_EKS_MAX_TOKENS": "1024",
                           "LLM_EKS_SYSTEM_PROMPT": "Be brief.", "LLM_EKS_API_KEY": "sk-x", "GRADIO_SERVER_PORT": "8080"})
    assert (s.title, s.max_tokens, s.system_prompt, s.api_key, s.server_port) == \
        ("Llama 2 13B", 1024, "Be brief.", "sk-x", 8080)
    with pytest.raises(AttributeError):
        s.model = "other"  # type: ignore[misc]


@pytest.mark.parametrize("missing", sorted(REQUIRED))
@pytest.mark.parametrize("value", [None, "", "   "])
def test_settings_missing_required_names_the_variable(missing: str, value: str | None) -> None:
    env = dict(REQUIRED)
    if value is None:
        del env[missing]
    else:
        env[missing] = value
    with pytest.raises(ValueError, match=missing) as err:
        settings_from_env(env)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name,value", [("LLM_EKS_MAX_TOKENS", "lots"), ("LLM_EKS_MAX_TOKENS", "0"),
                                        ("GRADIO_SERVER_PORT", "70000"), ("GRADIO_SERVER_PORT", "-1")])
def test_settings_bad_integer_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must be an integer"):
        settings_from_env({**REQUIRED, name: value})


# --- to_openai_messages ------------------------------------------------------------------------------------------

def test_messages_from_gradio6_history_with_parts_media_and_system_prompt() -> None:
    history = gradio_history(
        {"role": "user", "content": [text("What is EKS?"), IMAGE_PART]},
        {"role": "assistant", "content": [text("A managed Kubernetes service.")]},
        {"role": "user", "content": [IMAGE_PART]},  # media only: nothing to send
        {"role": "assistant", "content": [text("Nice cat.")], "metadata": {"title": "thought"}},
    )
    assert history[0]["content"][0] == {"type": "text", "text": "What is EKS?"}  # Gradio 6's shape, as assumed
    assert to_openai_messages("And Karpenter?", history, "Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is EKS?"},
        {"role": "assistant", "content": "A managed Kubernetes service."},
        {"role": "assistant", "content": "Nice cat."},
        {"role": "user", "content": "And Karpenter?"},
    ]


def test_messages_accept_plain_strings_and_skip_odd_entries() -> None:
    history: list[Any] = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": {"type": "text", "text": "hello"}},
        {"role": "assistant", "content": ("/tmp/cat.png", "a cat")},  # old tuple-style file: skipped
        {"role": "system", "content": "ignored: the system prompt comes from settings"},
        ["user", "not a message dict"],
        {"role": "user", "content": [text("two"), text("parts")]},
    ]
    assert to_openai_messages({"text": "multimodal box", "files": []}, history, None) == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "two\nparts"},
        {"role": "user", "content": "multimodal box"},
    ]
    assert to_openai_messages("q", [], "") == [{"role": "user", "content": "q"}]


# --- round trip through the function ChatInterface calls --------------------------------------------------------

def test_streamed_round_trip_through_the_chat_function(standin: StandIn) -> None:
    settings = settings_for(standin, LLM_EKS_SYSTEM_PROMPT="Be brief.", LLM_EKS_MAX_TOKENS="64")
    app = build_app(settings, OpenAI(base_url=standin.base_url, api_key="EMPTY", max_retries=0))
    history = gradio_history({"role": "user", "content": [text("hi")]},
                             {"role": "assistant", "content": [text("hello")]})
    question = "how many nodes does the cluster need today?"

    yielded = list(app.fn(question, history))

    assert yielded[-1] == REPLY_PREFIX + question
    assert len(yielded) > 2 and all(b.startswith(a) for a, b in zip(yielded, yielded[1:]))  # token by token
    (request,) = standin.requests
    assert request["model"] == "standin-model" and request["stream"] is True and request["max_tokens"] == 64
    assert request["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                                   {"role": "assistant", "content": "hello"}, {"role": "user", "content": question}]


def test_http_errors_become_readable_chat_messages(standin: StandIn) -> None:
    client = OpenAI(base_url=standin.base_url, api_key="EMPTY", max_retries=0)
    wrong_model = build_app(settings_for(standin, LLM_EKS_MODEL="no-such-model"), client)
    (reply,) = list(wrong_model.fn("hi", []))
    assert reply.startswith("⚠️ The model endpoint answered HTTP 404: The model `no-such-model` does not exist.")
    standin.fail_status = 503
    (reply,) = list(build_app(settings_for(standin), client).fn("hi", []))
    assert reply == "⚠️ The model endpoint answered HTTP 503: stand-in told to fail with 503"


def test_connection_refused_becomes_a_readable_chat_message() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"
    settings = settings_from_env({"LLM_EKS_OPENAI_BASE_URL": base_url, "LLM_EKS_MODEL": "m"})
    (reply,) = list(build_app(settings, OpenAI(base_url=base_url, api_key="EMPTY", max_retries=0)).fn("hi", []))
    assert reply.startswith(f"⚠️ Could not reach the model endpoint at {base_url}")
    assert "Connection refused" in reply and "Traceback" not in reply


def test_main_exits_with_one_line_when_unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in REQUIRED:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match="chat_ui: LLM_EKS_OPENAI_BASE_URL is required"):
        gradio_app.main()


def _launched(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dict[str, Any]:
    launched: dict[str, Any] = {}

    class FakeApp:
        def launch(self, **kwargs: Any) -> None:
            launched.update(kwargs)

    monkeypatch.setattr(gradio_app, "build_app", lambda settings: FakeApp())
    for name in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**REQUIRED, **env}.items():
        monkeypatch.setenv(name, value)
    gradio_app.main()
    return launched


def test_a_local_run_binds_loopback_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _launched(monkeypatch, {}) == {"server_name": "127.0.0.1", "server_port": 7860}
    assert _launched(monkeypatch, {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861"}) == {
        "server_name": "0.0.0.0", "server_port": 7861}


def test_the_pod_binds_all_interfaces() -> None:
    from components.gradio_ui import app_files, deployment_spec

    spec = deployment_spec("http://router.llm-eks.svc.cluster.local:8000/v1", "Qwen/Qwen3-1.7B", "chat", app_files())
    env = {e["name"]: e["value"] for e in spec["template"]["spec"]["containers"][0]["env"]}
    assert settings_from_env(env).server_name == "0.0.0.0"  # what the app will read in the pod


# --- the browser test ------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.live
def test_chat_round_trip_in_headless_chromium(standin: StandIn, tmp_path: Any) -> None:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver; .ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    question = "Which instance type serves Llama 2 13B?"
    app = build_app(settings_for(standin, LLM_EKS_TITLE="llm-eks browser test"))
    driver = None
    try:
        _, url, _ = app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                               quiet=True, ssr_mode=False)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,900"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))  # no Selenium Manager download
        driver.set_page_load_timeout(30)
        driver.get(url)
        wait = WebDriverWait(driver, 30)
        box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, 'textarea[data-testid="textbox"]')))
        box.send_keys(question, Keys.ENTER)

        expected = REPLY_PREFIX + question
        try:
            wait.until(lambda d: any(expected in e.text for e in d.find_elements(By.CSS_SELECTOR, '[data-testid="bot"]')))
        finally:
            driver.save_screenshot(str(tmp_path / "chat.png"))
        users = [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="user"]')]
        bots = [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="bot"]')]
        assert any(question in u for u in users), users
        assert any(expected in b for b in bots), bots
        assert "llm-eks browser test" in driver.page_source
        assert any(r["model"] == "standin-model" and r["messages"][-1] == {"role": "user", "content": question}
                   for r in standin.requests), standin.requests

        standin.fail_status = 503  # an endpoint failure shows up as a readable chat message, not a traceback
        box.send_keys("again", Keys.ENTER)
        wait.until(lambda d: any("HTTP 503" in e.text for e in d.find_elements(By.CSS_SELECTOR, '[data-testid="bot"]')))
        last = driver.find_elements(By.CSS_SELECTOR, '[data-testid="bot"]')[-1].text
        assert "The model endpoint answered HTTP 503: stand-in told to fail with 503" in last and "Traceback" not in last
    finally:
        if driver is not None:
            driver.quit()
        app.close()
