"""The vLLM adapter's parts that need no engine: where the checkpoint comes from (defect 8), the Ray Serve health
check (defect 7), the shipped Llama-2 template (defect 9). The adapter on the real engine: tests/engine/real/."""

from __future__ import annotations

import asyncio
import importlib
import sys
import types

import pytest

from serving import vllm_engine
from serving.openai_api import OpenAIServer
from serving.settings import DEFAULT_DOWNLOAD_DIR, EngineSettings, from_env, to_env

from .fake_engine import FakeEngine

HUB_ID = "NousResearch/Llama-2-13b-chat-hf"


def settings(**overrides) -> EngineSettings:
    return EngineSettings(**{**dict(model=HUB_ID, served_model_name=HUB_ID, max_model_len=4096, max_num_seqs=4,
                                    tensor_parallel_size=4, dtype="float16", block_size=4096), **overrides})


@pytest.fixture
def hub(monkeypatch):
    """huggingface_hub with the network replaced: the repo's files, and the snapshot_download calls made."""
    import huggingface_hub

    state = types.SimpleNamespace(files=["config.json", "model-00001-of-00003.safetensors",
                                         "pytorch_model-00001-of-00003.bin", "tokenizer.json"], calls=[])

    def snapshot_download(repo_id, local_dir, ignore_patterns=None, **kwargs):
        state.calls.append({"repo_id": repo_id, "local_dir": local_dir, "ignore_patterns": ignore_patterns, **kwargs})
        return local_dir

    def list_repo_files(self, repo_id, **kwargs):
        if state.files is None:
            raise huggingface_hub.errors.OfflineModeIsEnabled("offline")
        return state.files

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", list_repo_files)
    return state


def test_a_hub_id_is_downloaded_under_the_download_dir_and_loaded_from_there(hub, tmp_path):
    path = vllm_engine.checkpoint_dir(settings(download_dir=str(tmp_path)))
    assert path == str(tmp_path / HUB_ID)
    [call] = hub.calls
    assert call["repo_id"] == HUB_ID and call["local_dir"] == str(tmp_path / HUB_ID)
    # safetensors there: the .bin copy and Meta's original/ .pth are not downloaded
    assert {"*.bin", "*.pth", "original/*"} <= set(call["ignore_patterns"])
    assert "*.safetensors" not in call["ignore_patterns"]
    kwargs = vllm_engine.engine_kwargs(settings(), path)
    assert kwargs["model"] == path and kwargs["served_model_name"] == [HUB_ID]


def test_a_checkpoint_with_only_bin_weights_downloads_them(hub, tmp_path):
    hub.files = ["config.json", "pytorch_model.bin"]
    vllm_engine.checkpoint_dir(settings(download_dir=str(tmp_path)))
    assert "*.bin" not in hub.calls[0]["ignore_patterns"]


def test_offline_the_download_dir_serves(hub, tmp_path):
    hub.files = None  # HF_HUB_OFFLINE: snapshot_download returns the complete local copy
    assert vllm_engine.checkpoint_dir(settings(download_dir=str(tmp_path))) == str(tmp_path / HUB_ID)


def test_a_local_path_is_used_as_it_is(hub, tmp_path):
    assert vllm_engine.checkpoint_dir(settings(model=str(tmp_path))) == str(tmp_path)
    assert hub.calls == []


def test_the_download_dir_is_under_data_and_travels_in_the_environment():
    assert DEFAULT_DOWNLOAD_DIR.startswith("/data/")
    env = to_env(settings())
    assert env["LLM_EKS_DOWNLOAD_DIR"] == DEFAULT_DOWNLOAD_DIR
    assert from_env({**env, "LLM_EKS_DOWNLOAD_DIR": "/mnt/x"}).download_dir == "/mnt/x"
    env.pop("LLM_EKS_DOWNLOAD_DIR")
    assert from_env(env).download_dir == DEFAULT_DOWNLOAD_DIR


def test_the_llama2_template_ships_beside_the_adapter():
    text = vllm_engine.LLAMA2_CHAT_TEMPLATE.read_text(encoding="utf-8")
    assert "[INST]" in text and "<<SYS>>" in text and "source" in text.lower()


@pytest.fixture
def ray_app(monkeypatch):
    """serving.ray_app with a stand-in for `ray.serve` (Ray is in the pod's image, not in this virtualenv)."""
    serve = types.SimpleNamespace(deployment=lambda **_: lambda cls: type(cls.__name__, (cls,), {"bind": classmethod(lambda c: c)}))
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(serve=serve))
    monkeypatch.setitem(sys.modules, "ray.serve", serve)
    monkeypatch.delitem(sys.modules, "serving.ray_app", raising=False)
    yield importlib.import_module("serving.ray_app")
    sys.modules.pop("serving.ray_app", None)


def deployment(ray_app, engine):
    replica = ray_app.LLMDeployment.__new__(ray_app.LLMDeployment)
    replica.server = OpenAIServer(engine, HUB_ID)
    return replica


class EngineDeadError(Exception):
    """What vLLM's AsyncLLM.check_health raises once the engine core died."""


def test_ray_serve_health_check_raises_the_engines_error(ray_app):
    engine = FakeEngine()
    replica = deployment(ray_app, engine)
    asyncio.run(replica.check_health())  # alive: passes
    engine.dead = EngineDeadError("EngineCore encountered an issue")
    with pytest.raises(EngineDeadError, match="EngineCore"):
        asyncio.run(replica.check_health())
    engine.dead, engine.is_ready = None, False
    with pytest.raises(RuntimeError, match="not ready"):
        asyncio.run(replica.check_health())


def test_health_endpoint_is_503_with_the_reason_when_the_engine_is_dead():
    from starlette.testclient import TestClient

    from serving.openai_api import build_app

    engine = FakeEngine()
    engine.dead = EngineDeadError("EngineCore encountered an issue")
    r = TestClient(build_app(OpenAIServer(engine, HUB_ID))).get("/health")
    assert r.status_code == 503 and "EngineDeadError: EngineCore encountered an issue" in r.json()["error"]["message"]


def test_a_failing_abort_does_not_hide_why_generation_failed():
    from starlette.testclient import TestClient

    from serving.openai_api import build_app

    class DeadEngine(FakeEngine):
        async def abort(self, request_id):
            raise EngineDeadError("EngineCore encountered an issue")

    client = TestClient(build_app(OpenAIServer(DeadEngine(fail_after=1), HUB_ID)))
    r = client.post("/v1/chat/completions", json={"model": HUB_ID, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 500 and r.json()["error"]["message"] == "generation failed: device lost"
