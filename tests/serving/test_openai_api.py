"""The serve app's OpenAI layer: request and response handling, with the engine replaced at its boundary."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from serving.openai_api import OpenAIServer, Sampling, build_app  # noqa: E402
from serving.settings import ENV_NAMES, EngineSettings, from_env, to_env  # noqa: E402

from .fake_engine import FakeEngine  # noqa: E402

MODEL = "meta-llama/Llama-2-13b-chat-hf"


@pytest.fixture
def engine():
    return FakeEngine()


@pytest.fixture
def client(engine):
    return TestClient(build_app(OpenAIServer(engine, MODEL)))


def ask(**extra):
    return {"model": MODEL, "messages": [{"role": "user", "content": "What is the capital of France?"}], **extra}


def test_models_lists_the_served_model(client):
    body = client.get("/v1/models").json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == [MODEL]
    assert body["data"][0]["max_model_len"] == 64


def test_chat_completion_shape_and_usage(client, engine):
    r = client.post("/v1/chat/completions", json=ask(max_tokens=20, temperature=0.2, stop=["END"]))
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == MODEL and body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "The capital of France is Paris."}
    assert choice["finish_reason"] == "stop"
    prompt = 6 + 2 + 1  # 6 words + 2 template tokens + 1
    assert body["usage"] == {"prompt_tokens": prompt, "completion_tokens": 6, "total_tokens": prompt + 6}
    _, messages, sampling = engine.requests[0]
    assert messages == [{"role": "user", "content": "What is the capital of France?"}]
    assert sampling == Sampling(max_tokens=20, temperature=0.2, top_p=1.0, stop=("END",))


def test_max_tokens_cuts_with_finish_reason_length(client):
    body = client.post("/v1/chat/completions", json=ask(max_tokens=2)).json()
    assert body["choices"][0]["message"]["content"] == "The capital"
    assert body["choices"][0]["finish_reason"] == "length"


def test_content_parts_and_developer_role_are_flattened(client, engine):
    client.post("/v1/chat/completions", json={"model": MODEL, "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "image_url", "image_url": {"url": "x"}},
                                     {"type": "text", "text": "there"}]}]})
    assert engine.requests[0][1] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]


def test_default_max_tokens_fills_the_context(client, engine):
    client.post("/v1/chat/completions", json=ask())
    assert engine.requests[0][2].max_tokens == 64 - 9


@pytest.mark.parametrize("body, status, param, code", [
    (ask(model="other/model"), 404, "model", "model_not_found"),
    ({"model": MODEL, "messages": []}, 400, "messages", None),
    (ask(n=2), 400, "n", None),
    (ask(temperature=3), 400, "temperature", None),
    (ask(max_tokens=60), 400, "messages", "context_length_exceeded"),
    ({"messages": [{"role": "user", "content": "x"}]}, 400, "model", None),
    ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages.0.role", None),
])
def test_errors_have_the_openai_shape(client, body, status, param, code):
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"]
    assert err["param"] == param and err["code"] == code


def test_context_error_names_the_numbers(client):
    message = client.post("/v1/chat/completions", json=ask(max_tokens=60)).json()["error"]["message"]
    assert "maximum context length is 64 tokens" in message and "69 tokens (9 in the messages, 60 in the completion)" in message


def test_not_json_and_unknown_routes(client):
    assert client.post("/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}).status_code == 400
    assert client.get("/v1/chat/completions").status_code == 405
    assert client.get("/v1/embeddings").status_code == 404


def test_health_follows_the_engine(client, engine):
    engine.is_ready = False
    assert client.get("/health").status_code == 503
    engine.is_ready = True
    assert client.get("/health").status_code == 200


def _events(text: str) -> list:
    out = []
    for block in text.strip().split("\n\n"):
        assert block.startswith("data: ")
        payload = block[len("data: "):]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_streaming_is_server_sent_events_ending_in_done(client):
    with client.stream("POST", "/v1/chat/completions", json=ask(stream=True, stream_options={"include_usage": True})) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _events(r.read().decode())
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "The capital of France is Paris."
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6


def test_an_engine_failure_mid_stream_is_reported_in_band_and_aborted():
    engine = FakeEngine(fail_after=2)
    client = TestClient(build_app(OpenAIServer(engine, MODEL)))
    with client.stream("POST", "/v1/chat/completions", json=ask(stream=True)) as r:
        events = _events(r.read().decode())
    assert "generation failed: device lost" in events[-1]["error"]["message"]
    assert engine.aborted == [engine.requests[0][0]]


def test_a_client_that_leaves_mid_stream_frees_its_sequence():
    engine = FakeEngine()
    server = OpenAIServer(engine, MODEL)

    async def leave_early():
        stream = server._events("chatcmpl-x", [{"role": "user", "content": "hi"}], Sampling(max_tokens=10), False)
        await stream.__anext__()
        await stream.__anext__()
        await stream.aclose()  # what Starlette does when the connection drops

    asyncio.run(leave_early())
    assert engine.aborted == ["chatcmpl-x"]


@pytest.fixture
def live_server(engine):
    from tests.live_server import serving

    with serving(build_app(OpenAIServer(engine, MODEL))) as url:
        yield f"{url}/v1"


def test_the_official_openai_client_round_trip(live_server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=live_server, api_key="EMPTY")
    assert [m.id for m in client.models.list()] == [MODEL]
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Capital of France?"}], max_tokens=20)
    assert reply.choices[0].message.content == "The capital of France is Paris." and reply.usage.completion_tokens == 6
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Capital?"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "The capital of France is Paris."
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=1000)
    assert err.value.code == "context_length_exceeded"


# --- /v1/completions: a raw prompt, no chat template -----------------------------------------------------------


def complete(**extra):
    return {"model": MODEL, "prompt": "The capital of France is", **extra}


def test_completion_shape_usage_and_the_raw_prompt(client, engine):
    r = client.post("/v1/completions", json=complete(max_tokens=20, temperature=0.2, top_p=0.9, stop="END", seed=7))
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "text_completion" and body["model"] == MODEL and body["id"].startswith("cmpl-")
    assert body["choices"] == [{"index": 0, "text": "The capital of France is Paris.", "logprobs": None,
                                "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 6, "total_tokens": 12}  # BOS + 5 words
    [(request_id, prompt_ids, sampling)] = engine.completions
    assert engine.requests == []  # no chat template
    assert prompt_ids[0] == FakeEngine.BOS and len(prompt_ids) == 6 and request_id == body["id"]
    assert sampling == Sampling(max_tokens=20, temperature=0.2, top_p=0.9, stop=("END",), seed=7)


def test_completion_defaults_are_the_openai_apis(client, engine):
    body = client.post("/v1/completions", json={"model": MODEL, "prompt": "Hi"}).json()
    assert engine.completions[0][2] == Sampling(max_tokens=16)  # max_tokens 16, temperature 1, top_p 1
    assert body["usage"]["prompt_tokens"] == 2


def test_what_inference_perf_sends(client, engine):
    """inference-perf 0.7.0's completion request body (inference_perf/apis/completion.py), streamed: exact prompt
    and output token counts (ignore_eos, add_special_tokens=false for prompts that carry their own specials)."""
    prompt = " ".join(f"w{i}" for i in range(12))
    body = {"model": MODEL, "prompt": prompt, "max_tokens": 40, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}, "add_special_tokens": False}
    with client.stream("POST", "/v1/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _events(r.read().decode())
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "text_completion" and c["model"] == MODEL for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    with_text = [c for c in chunks if c["choices"]]
    assert len(with_text) == 40 and all(c["choices"][0]["text"] for c in with_text)  # one event per token
    assert [c["choices"][0]["finish_reason"] for c in with_text] == [None] * 39 + ["length"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52}
    [(_, prompt_ids, sampling)] = engine.completions
    assert len(prompt_ids) == 12 and sampling.ignore_eos and sampling.max_tokens == 40


def test_without_ignore_eos_the_reply_ends_at_its_end(client):
    body = client.post("/v1/completions", json=complete(max_tokens=40)).json()
    assert body["usage"]["completion_tokens"] == 6 and body["choices"][0]["finish_reason"] == "stop"
    body = client.post("/v1/completions", json=complete(max_tokens=40, ignore_eos=True)).json()
    assert body["usage"]["completion_tokens"] == 40 and body["choices"][0]["finish_reason"] == "length"


def test_stream_without_usage_and_a_stop_string(client):
    with client.stream("POST", "/v1/completions", json=complete(stream=True, stop=["France"])) as r:
        events = _events(r.read().decode())
    assert events[-1] == "[DONE]" and all(c["choices"] for c in events[:-1])  # no usage chunk unless asked
    assert "".join(c["choices"][0]["text"] for c in events[:-1]) == "The capital of"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("prompt", [[5, 6, 7], [[5, 6, 7]]])
def test_a_prompt_of_token_ids_is_taken_as_it_is(client, engine, prompt):
    body = client.post("/v1/completions", json=complete(prompt=prompt, max_tokens=3)).json()
    assert engine.completions[0][1] == [5, 6, 7] and body["usage"]["prompt_tokens"] == 3
    assert body["choices"][0]["text"] == "The capital of" and body["choices"][0]["finish_reason"] == "length"


def test_a_one_prompt_array_of_text_is_that_prompt(client, engine):
    client.post("/v1/completions", json=complete(prompt=["Hello there"]))
    assert len(engine.completions[0][1]) == 3


def test_chat_takes_ignore_eos_too(client, engine):
    body = client.post("/v1/chat/completions", json=ask(max_tokens=9, ignore_eos=True)).json()
    assert engine.requests[0][2].ignore_eos and body["usage"]["completion_tokens"] == 9


@pytest.mark.parametrize("body, status, param, code", [
    (complete(model="other/model"), 404, "model", "model_not_found"),
    ({"model": MODEL}, 400, "prompt", None),
    (complete(prompt=[1, -2]), 400, "prompt", None),
    (complete(prompt={"text": "x"}), 400, "prompt", None),
    (complete(prompt=[]), 400, "prompt", None),
    (complete(prompt=["a", "b"]), 400, "prompt", None),
    (complete(prompt=[5, 1000]), 400, "prompt", None),  # out of the (fake) vocabulary: the engine refuses it
    (complete(n=2), 400, "n", None),
    (complete(best_of=3), 400, "best_of", None),
    (complete(echo=True), 400, "echo", None),
    (complete(logprobs=2), 400, "logprobs", None),
    (complete(suffix="!"), 400, "suffix", None),
    (complete(max_tokens=0), 400, "max_tokens", None),
    (complete(temperature=-1), 400, "temperature", None),
    (complete(max_tokens=60), 400, "prompt", "context_length_exceeded"),
    (complete(prompt=list(range(2, 66))), 400, "prompt", "context_length_exceeded"),
    (complete(stream=True, max_tokens=60), 400, "prompt", "context_length_exceeded"),
])
def test_completion_errors_have_the_openai_shape(client, body, status, param, code):
    r = client.post("/v1/completions", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"]
    assert err["param"] == param and err["code"] == code


def test_completion_context_error_names_the_numbers(client):
    message = client.post("/v1/completions", json=complete(max_tokens=60)).json()["error"]["message"]
    assert "maximum context length is 64 tokens" in message and "66 tokens (6 in the prompt, 60 in the completion)" in message


def test_completion_routes(client):
    assert client.post("/v1/completions", content=b"{nope", headers={"content-type": "application/json"}).status_code == 400
    assert client.get("/v1/completions").status_code == 405


def test_an_engine_failure_in_a_completion_is_a_server_error_or_in_band():
    engine = FakeEngine(fail_after=2)
    client = TestClient(build_app(OpenAIServer(engine, MODEL)))
    r = client.post("/v1/completions", json=complete())
    assert r.status_code == 500 and r.json()["error"] == {
        "message": "generation failed: device lost", "type": "server_error", "param": None, "code": None}
    with client.stream("POST", "/v1/completions", json=complete(stream=True)) as r:
        events = _events(r.read().decode())
    assert "generation failed: device lost" in events[-1]["error"]["message"]
    assert engine.aborted == [engine.completions[0][0], engine.completions[1][0]]


def test_a_completion_client_that_leaves_mid_stream_frees_its_sequence():
    engine = FakeEngine()
    server = OpenAIServer(engine, MODEL)

    async def leave_early():
        stream = engine.complete("cmpl-x", [1, 2, 3], Sampling(max_tokens=10))
        events = server._completion_events("cmpl-x", await stream.__anext__(), stream, 3, False)
        await events.__anext__()
        await events.__anext__()
        await events.aclose()  # what Starlette does when the connection drops

    asyncio.run(leave_early())
    assert engine.aborted == ["cmpl-x"]


def test_the_official_openai_client_completions(live_server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=live_server, api_key="EMPTY", max_retries=0)
    reply = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=20)
    assert reply.object == "text_completion" and reply.choices[0].text == "The capital of France is Paris."
    assert reply.choices[0].finish_reason == "stop" and reply.usage.prompt_tokens == 6
    exact = client.completions.create(model=MODEL, prompt=[7, 8, 9], max_tokens=25, extra_body={"ignore_eos": True})
    assert exact.usage.prompt_tokens == 3 and exact.usage.completion_tokens == 25
    assert exact.choices[0].finish_reason == "length"
    chunks = list(client.completions.create(model=MODEL, prompt="Capital?", max_tokens=30, stream=True,
                                            stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices).startswith("The capital of France is Paris. The")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 30
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x")
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=MODEL, prompt="x", max_tokens=1000)
    assert err.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=MODEL, prompt="x", stream=True, max_tokens=1000)
    assert err.value.code == "context_length_exceeded"


def test_settings_round_trip_through_one_set_of_names():
    s = EngineSettings(model=MODEL, served_model_name=MODEL, max_model_len=4096, max_num_seqs=4,
                       tensor_parallel_size=4, dtype="float16", block_size=4096)
    env = to_env(s)
    assert set(env) == set(ENV_NAMES.values()) and all(k.startswith("LLM_EKS_") for k in env)
    assert from_env(env) == s
    assert "LLM_EKS_MAX_NUM_SEQS" in env  # the name the seeds' chart got wrong (MAX_NUM_SEQ vs MAX_NUM_SEQS)


@pytest.mark.parametrize("broken, message", [
    ({"LLM_EKS_MAX_NUM_SEQS": None}, "LLM_EKS_MAX_NUM_SEQS is not set"),
    ({"LLM_EKS_MAX_MODEL_LEN": "lots"}, "LLM_EKS_MAX_MODEL_LEN must be an integer"),
    ({"LLM_EKS_TENSOR_PARALLEL_SIZE": "0"}, "must be positive"),
    ({"LLM_EKS_ENABLE_PREFIX_CACHING": "yes"}, "true or false"),
])
def test_settings_errors_name_the_variable(broken, message):
    env = to_env(EngineSettings(MODEL, MODEL, 4096, 4, 4, "float16", 4096))
    for key, value in broken.items():
        if value is None:
            env.pop(key)
        else:
            env[key] = value
    with pytest.raises(ValueError, match=message):
        from_env(env)
