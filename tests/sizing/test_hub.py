"""Any Hub model: config.json from the Hub, weights from the checkpoint's safetensors headers, never guessed.

No network here: the Hub client's two calls are replaced by recorded answers (a config.json and a
SafetensorsRepoMetadata built from published per-dtype parameter counts).
"""

from __future__ import annotations

import json
import socket

import huggingface_hub
import pytest
from huggingface_hub.errors import NotASafetensorsRepoError
from huggingface_hub.utils import (
    SafetensorsFileMetadata,
    SafetensorsRepoMetadata,
    TensorInfo,
)

from sizing.architecture import from_config
from sizing.catalog import GIB, accelerator, catalog_models, load_model_config
from sizing.errors import SizingError
from sizing.memory import gpu_budget
from sizing.weights import checkpoint_bytes

from .ground_truth import runs


def recorded_metadata(parameters: dict[str, int]) -> SafetensorsRepoMetadata:
    """A Hub answer whose parameter_count is `parameters` (one tensor per dtype stands for all of that dtype)."""
    tensors = {f"all.{dtype}": TensorInfo(dtype=dtype, shape=[n], data_offsets=(0, 0)) for dtype, n in parameters.items()}
    file = SafetensorsFileMetadata(metadata={}, tensors=tensors)
    return SafetensorsRepoMetadata(metadata=None, sharded=False, weight_map=dict.fromkeys(tensors, "model.safetensors"),
                                   files_metadata={"model.safetensors": file})


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """Serve `config` and `parameters` (or no safetensors when None) for any model id not in the catalog."""
    answers = {}

    def download(model_id, filename, **_):
        path = tmp_path / "config.json"
        path.write_text(json.dumps(answers["config"]))
        return str(path)

    def metadata(model_id, **_):
        if answers["parameters"] is None:
            raise NotASafetensorsRepoError(f"{model_id} has no safetensors")
        return recorded_metadata(answers["parameters"])

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [])
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(huggingface_hub, "get_safetensors_metadata", metadata)

    def serve(config: dict, parameters: dict[str, int] | None):
        answers.update(config=config, parameters=parameters)

    return serve


LLAMA_31_8B = json.loads(catalog_models()["meta-llama/llama-3.1-8b"].read_text())
# The Hub's safetensors total of the Llama 3.1 8B checkpoints: 8,030,261,248 BF16 parameters.
LLAMA_31_8B_PARAMETERS = {"BF16": 8_030_261_248}


def test_a_hub_model_takes_its_weights_from_the_safetensors_headers(hub):
    hub(LLAMA_31_8B, LLAMA_31_8B_PARAMETERS)
    cfg, source = load_model_config("someone/llama-3.1-8b-finetune")
    assert source == "hub"
    arch = from_config(cfg, "someone/llama-3.1-8b-finetune")
    assert arch.extras["safetensors_parameters"] == LLAMA_31_8B_PARAMETERS
    # vLLM 0.19 on H100 logged "Model loading took 14.99 GiB" for this checkpoint (h100_v0_19.yaml).
    logged = next(r for r in runs() if r["id"] == "llama-3.1-8b-tp1pp1-8192")["logged"]["weights_gib"]
    budget = gpu_budget(arch, accelerator("h100"), max_model_len=8192, gpu_memory_utilization=0.95)
    assert budget.weights_gib == pytest.approx(logged, abs=0.01)


def test_the_checkpoint_bytes_win_and_the_architecture_splits_them(hub):
    # A checkpoint saved in float32 with an extra 1,000,000-parameter tensor the architecture does not know:
    # served in bfloat16, its bytes are the header counts x 2, split across ranks as the architecture splits.
    hub({**LLAMA_31_8B, "torch_dtype": "float32"}, {"F32": 8_030_261_248 + 1_000_000})
    arch = from_config(load_model_config("someone/llama-fp32")[0])
    one = gpu_budget(arch, accelerator("h100"), max_model_len=8192, dtype="bfloat16")
    two = gpu_budget(arch, accelerator("h100"), max_model_len=8192, dtype="bfloat16", tensor_parallel_size=2)
    rotary = 131072 * 128 * 2
    assert one.weights_gib * GIB - rotary == pytest.approx((8_030_261_248 + 1_000_000) * 2)
    assert 0.5 < (two.weights_gib * GIB - rotary) / (one.weights_gib * GIB - rotary) < 0.52  # embeddings, norms


def test_packed_and_scale_tensors_keep_their_own_size():
    # An AWQ-like checkpoint: int32 packed weights and float16 scales, served in bfloat16.
    assert checkpoint_bytes({"I32": 100, "F16": 10, "U8": 3}, "bfloat16") == 100 * 4 + 10 * 2 + 3


def test_a_repo_without_safetensors_falls_back_to_the_architecture(hub):
    hub(LLAMA_31_8B, None)
    arch = from_config(load_model_config("someone/llama-bin")[0])
    assert "safetensors_parameters" not in arch.extras
    assert arch.parameters == 8_030_261_248


def test_an_unknown_attention_kind_is_refused_in_one_line_naming_it(hub):
    hub({"model_type": "rwkv7", "hidden_size": 2048, "num_hidden_layers": 24}, {"BF16": 1_500_000_000})
    with pytest.raises(SizingError) as err:
        from_config(load_model_config("someone/rwkv")[0])
    message = str(err.value)
    assert "model_type 'rwkv7' is not supported" in message and "\n" not in message


def test_every_model_the_stacks_and_the_readme_name_is_in_the_offline_catalog(monkeypatch):
    # Offline, the catalog answers for every model a stack serves and every `python -m sizing --model` example.
    import re

    from .ground_truth import ROOT

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    named = set()
    for stack in (ROOT / "stacks").glob("*.yaml"):
        named |= set(re.findall(r"model: ([\w.-]+/[\w.-]+)", stack.read_text()))
    # Every `--model org/name` in the README but the placeholder and the local tiny model vLLM serves from build/.
    named |= set(re.findall(r"--model ([\w.-]+/[\w.-]+)", (ROOT / "README.md").read_text())) - {"org/name", "build/tiny"}
    assert len(named) >= 6, named
    for model in sorted(named):
        cfg, source = load_model_config(model)
        assert source == "catalog", model
        from_config(cfg, model)
