"""The Ray Serve app's engine adapter and OpenAI layer on the real vLLM 0.16 AsyncLLM (the Neuron image's vLLM, CPU
build), serving a tiny random-weight Llama over HTTP, driven by the official `openai` client.

One engine for the module (about a minute to start on 2 cores). Its checkpoint stands for a Hub id whose tokenizer
has no chat template (the NousResearch Llama-2 mirrors): the adapter must find it already downloaded under
LLM_EKS_DOWNLOAD_DIR (HF_HUB_OFFLINE), hand vLLM the local path, serve the Hub id, and chat in Llama-2's format.
The last test kills the engine process and stays last.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import httpx
import openai
import pytest

from serving.openai_api import OpenAIServer, build_app
from serving.settings import EngineSettings, from_env, to_env
from serving.vllm_engine import LLAMA2_CHAT_TEMPLATE, VLLMEngine
from tests.live_server import serving
from tools.tiny_model import write as write_tiny_model

from .conftest import engine_version

HUB_ID = "llm-eks-test/tiny-llama-2-chat"  # never downloaded: the test puts it where the adapter downloads to
MAX_MODEL_LEN = 256
# Only what the CPU backend needs differs from a Neuron plan: bfloat16 weights and a KV cache size for CPU memory.
CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def download_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "models"
    write_tiny_model(root / HUB_ID, chat_template=False)
    return root


@pytest.fixture(scope="module")
def engine(download_dir):
    import huggingface_hub.constants as hub

    saved = {k: os.environ.get(k) for k in CPU_ENV}
    os.environ.update(CPU_ENV)
    hub_offline, hub.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE, True  # read at import: this process imported it already
    # The pod's path: settings through the environment names the RayService writes (serving/settings.py).
    settings = from_env(to_env(EngineSettings(
        model=HUB_ID, served_model_name=HUB_ID, max_model_len=MAX_MODEL_LEN, max_num_seqs=4, tensor_parallel_size=1,
        dtype="bfloat16", block_size=MAX_MODEL_LEN, download_dir=str(download_dir),
    )))
    started = time.monotonic()
    built = VLLMEngine(settings)
    print(f"vLLM {engine_version()} engine started in {time.monotonic() - started:.0f} s")
    yield built
    built._engine.shutdown()
    hub.HF_HUB_OFFLINE = hub_offline
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def base_url(engine):
    with serving(build_app(OpenAIServer(engine, HUB_ID))) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="EMPTY", max_retries=0, timeout=120)


def ask(content: str = "What is the capital of France?", system: str | None = "Be brief.") -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]


def llama2_prompt_ids(engine, messages) -> list[int]:
    """The prompt as Llama-2's format spells it, tokenized by the checkpoint's tokenizer."""
    tokenizer = engine._engine.get_tokenizer()
    system, user = messages[0]["content"], messages[1]["content"]
    text = f"<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]"
    return tokenizer.encode(text, add_special_tokens=False)


def test_vllm_loads_the_local_download_and_serves_the_hub_id(engine, download_dir, client):
    local = str((download_dir / HUB_ID).resolve())
    assert engine.model_path == local
    assert engine._engine.model_config.model == local  # vLLM got the path: vllm-neuron copies nothing under ./
    assert engine._engine.model_config.served_model_name == HUB_ID
    assert [m.id for m in client.models.list()] == [HUB_ID]


def test_health_is_the_engines(engine, base_url):
    assert asyncio.run(engine.ready()) is True
    assert httpx.get(f"{base_url}/health").status_code == 200


def test_chat_completion_in_llama2_format(engine, client):
    messages = ask()
    reply = client.chat.completions.create(model=HUB_ID, messages=messages, max_tokens=8, temperature=0)
    choice = reply.choices[0]
    assert reply.model == HUB_ID and reply.object == "chat.completion" and choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("length", "stop")
    assert 1 <= reply.usage.completion_tokens <= 8
    if choice.finish_reason == "length":
        assert reply.usage.completion_tokens == 8
    # The tokenizer has no chat template: the prompt is the shipped Llama-2 one, token for token.
    assert reply.usage.prompt_tokens == len(llama2_prompt_ids(engine, messages))
    again = client.chat.completions.create(model=HUB_ID, messages=messages, max_tokens=8, temperature=0)
    assert again.choices[0].message.content == choice.message.content  # greedy is deterministic


def test_streaming_matches_the_whole_reply(client):
    messages = ask("Tell me a story.")
    whole = client.chat.completions.create(model=HUB_ID, messages=messages, max_tokens=12, temperature=0)
    chunks = list(client.chat.completions.create(model=HUB_ID, messages=messages, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.model == HUB_ID for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    with_choices = [c for c in chunks if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == whole.choices[0].message.content
    assert with_choices[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_a_client_that_leaves_mid_stream_is_aborted_in_the_engine(engine, base_url, client, monkeypatch):
    """The connection drops after two events: the adapter's abort reaches vLLM's engine core, and it serves on."""
    called, reached_core = [], []
    adapter_abort = engine.abort
    core = engine._engine.engine_core
    core_abort = core.abort_requests_async

    async def spy_abort(request_id):
        called.append(request_id)
        await adapter_abort(request_id)

    async def spy_core_abort(request_ids):
        await core_abort(request_ids)
        reached_core.extend(request_ids)  # only once the engine core was told

    monkeypatch.setattr(engine, "abort", spy_abort)
    monkeypatch.setattr(core, "abort_requests_async", spy_core_abort)
    body = {"model": HUB_ID, "messages": ask("Count to a thousand."), "max_tokens": MAX_MODEL_LEN - 40,
            "temperature": 0, "stream": True}
    with httpx.Client(timeout=60) as http:
        with http.stream("POST", f"{base_url}/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            events = r.iter_lines()
            first = next(line for line in events if line.startswith("data: "))
            request_id = json.loads(first[len("data: "):])["id"]
            next(line for line in events if line.startswith("data: "))
        # leaving the block closes the connection mid-stream
    deadline = time.monotonic() + 30
    while not (called and any(i.startswith(request_id) for i in reached_core)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert called == [request_id], "the OpenAI layer did not abort the request"
    assert any(i.startswith(request_id) for i in reached_core), "vLLM's engine core never got the abort"
    while engine._engine.output_processor.has_unfinished_requests() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not engine._engine.output_processor.has_unfinished_requests()
    reply = client.chat.completions.create(model=HUB_ID, messages=ask(), max_tokens=4, temperature=0)
    assert reply.usage.completion_tokens >= 1  # still serving


def test_context_limit_is_the_engines(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=HUB_ID, messages=ask(), max_tokens=MAX_MODEL_LEN)
    assert err.value.code == "context_length_exceeded"


def test_a_completion_honours_token_counts_with_ignore_eos(engine, client):
    """/v1/completions, as the benchmark drives it: a raw prompt (no chat template) and exactly max_tokens out."""
    prompt = "The quick brown fox jumps over the lazy dog"
    tokenizer = engine._engine.get_tokenizer()
    reply = client.completions.create(model=HUB_ID, prompt=prompt, max_tokens=24, temperature=0,
                                      extra_body={"ignore_eos": True})
    choice = reply.choices[0]
    assert reply.object == "text_completion" and reply.model == HUB_ID and reply.id.startswith("cmpl-")
    assert reply.usage.prompt_tokens == len(tokenizer.encode(prompt))  # the BOS and the words, nothing more
    assert reply.usage.completion_tokens == 24 and choice.finish_reason == "length"
    assert isinstance(choice.text, str)
    # add_special_tokens=false (inference-perf sends it for prompts that carry their own) reaches the tokenizer
    bare = client.completions.create(model=HUB_ID, prompt=prompt, max_tokens=2, temperature=0,
                                     extra_body={"ignore_eos": True, "add_special_tokens": False})
    assert bare.usage.prompt_tokens == len(tokenizer.encode(prompt, add_special_tokens=False))
    assert bare.usage.completion_tokens == 2
    # the same prompt as token ids: the same greedy continuation
    ids = tokenizer.encode(prompt)
    again = client.completions.create(model=HUB_ID, prompt=ids, max_tokens=24, temperature=0,
                                      extra_body={"ignore_eos": True})
    assert again.usage.prompt_tokens == len(ids) and again.choices[0].text == choice.text


def test_a_streamed_completion_as_inference_perf_sends_it(base_url, client):
    """inference-perf 0.7.0's body (inference_perf/apis/completion.py): SSE chunks, max_tokens honoured, usage last."""
    body = {"model": HUB_ID, "prompt": "Once upon a time " * 10, "max_tokens": 40, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}}
    with httpx.Client(timeout=120) as http, http.stream("POST", f"{base_url}/v1/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks) and len({c["id"] for c in chunks}) == 1
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == [] and usage["completion_tokens"] == 40
    assert usage["total_tokens"] == usage["prompt_tokens"] + 40
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]][-1] == "length"
    whole = client.completions.create(model=HUB_ID, prompt=body["prompt"], max_tokens=40, temperature=0,
                                      extra_body={"ignore_eos": True})
    assert whole.usage.prompt_tokens == usage["prompt_tokens"]
    streamed = list(client.completions.create(model=HUB_ID, prompt=body["prompt"], max_tokens=40, temperature=0,
                                              stream=True, extra_body={"ignore_eos": True}))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == whole.choices[0].text


def test_completion_errors_are_the_engines(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=HUB_ID, prompt="hello", max_tokens=MAX_MODEL_LEN)
    assert err.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as err:  # vLLM's own check: a token id out of the vocabulary
        client.completions.create(model=HUB_ID, prompt=[1, 10**7], max_tokens=2)
    assert "out of vocabulary" in err.value.body["message"] and err.value.body["param"] == "prompt"
    reply = client.completions.create(model=HUB_ID, prompt="still serving", max_tokens=2,
                                      extra_body={"ignore_eos": True})
    assert reply.usage.completion_tokens == 2


def test_the_tokenizers_own_template_wins(engine, tmp_path):
    """With a template of its own, the tokenizer's is used, not the shipped Llama-2 one (same adapter, no engine)."""
    from transformers import AutoTokenizer

    own = AutoTokenizer.from_pretrained(write_tiny_model(tmp_path / "own", chat_template=True))
    adapter = VLLMEngine.__new__(VLLMEngine)
    adapter._engine, adapter._tokenizer, adapter._template = type("E", (), {"get_tokenizer": lambda self: own})(), None, None
    ids = asyncio.run(adapter._prompt_ids([{"role": "user", "content": "Hi"}]))
    assert own.decode(ids) == "<|user|>\nHi</s>\n<|assistant|>\n"
    assert adapter._template is None and LLAMA2_CHAT_TEMPLATE.is_file()


def test_a_dead_engine_fails_the_health_check(engine, base_url, client):
    """Last: kill vLLM's engine-core process. ready() raises vLLM's EngineDeadError, /health answers 503, requests
    fail with a server error: Ray Serve's check_health (serving/ray_app.py) raises and the replica restarts."""
    from vllm.v1.engine.exceptions import EngineDeadError

    process = engine._engine.engine_core.resources.engine_manager.processes[0]
    process.kill()
    process.join(timeout=30)
    deadline = time.monotonic() + 30
    while not engine._engine.errored and time.monotonic() < deadline:
        time.sleep(0.1)
    with pytest.raises(EngineDeadError):
        asyncio.run(engine.ready())
    health = httpx.get(f"{base_url}/health")
    assert health.status_code == 503 and "EngineDeadError" in health.json()["error"]["message"]
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model=HUB_ID, messages=ask(), max_tokens=4)
    assert err.value.body["message"].startswith("generation failed: EngineCore")
