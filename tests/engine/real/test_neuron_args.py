"""Every Neuron stack's engine settings, turned into vLLM 0.16.0's AsyncEngineArgs and engine config (CPU build).

components/ray_service.py puts the plan's EngineSettings in the Ray worker's environment; serving/vllm_engine.py
builds AsyncEngineArgs from them with engine_kwargs(), the same function used here, on the Neuron image's vLLM.
The engine config is built by the CPU platform, which checks more than vllm-neuron's: the plugin skips the
attention-head divisibility, quantization and max-length checks, and sets block_size = max_model_len itself without
prefix caching (vllm_neuron/platform.py). A refusal from one of those checks would be CPU-only; none happens today.
"""

from __future__ import annotations

import pytest

from serving.settings import EngineSettings, from_env, to_env
from serving.vllm_engine import engine_kwargs

from .conftest import engine_version, serve_args


def test_this_engine_is_the_neuron_image_vllm(plans):
    assert engine_version() == plans["neuron_vllm"], (
        f"components/versions.py runs vLLM {plans['neuron_vllm']} on Neuron but this engine is {engine_version()}: "
        "pin the same version in the Makefile's ENGINE_VERSIONS and a requirements-engine-<version>.txt")


def test_every_neuron_plan_builds_engine_args(neuron_model, model_dir):
    from vllm import AsyncEngineArgs

    settings = from_env(to_env(EngineSettings(**neuron_model["settings"])))  # through the pod's environment
    config = AsyncEngineArgs(**engine_kwargs(settings, model_dir(neuron_model["config"]))).create_engine_config()
    assert config.parallel_config.tensor_parallel_size == settings.tensor_parallel_size
    assert config.model_config.max_model_len == settings.max_model_len
    assert config.scheduler_config.max_num_seqs == settings.max_num_seqs
    assert config.cache_config.block_size == settings.block_size
    assert config.model_config.served_model_name == settings.served_model_name == neuron_model["model"]
    assert str(config.model_config.dtype).removeprefix("torch.") == settings.dtype


def test_every_neuron_plans_recorded_flags_parse(neuron_model, capsys):
    """plan.json shows the planner's vllm-neuron flags as a `vllm serve` command line: vLLM 0.16 must take it, and
    it must say what the settings say."""
    argv = neuron_model["args"]
    try:
        engine_args = serve_args(argv)
    except SystemExit:
        pytest.fail(f"vLLM {engine_version()} refuses `vllm serve {' '.join(argv)}`: {capsys.readouterr().err.strip()}")
    settings = neuron_model["settings"]
    assert (engine_args.model, engine_args.max_model_len, engine_args.tensor_parallel_size, engine_args.max_num_seqs,
            engine_args.dtype, bool(engine_args.enable_prefix_caching)) == (
        settings["model"], settings["max_model_len"], settings["tensor_parallel_size"], settings["max_num_seqs"],
        settings["dtype"], settings["enable_prefix_caching"])


@pytest.mark.parametrize("field, value, why", [
    ("dtype", "float8", "Input should be 'auto', 'half', 'float16', 'bfloat16', 'float' or 'float32'"),
    ("dtype", "int4", "Input should be 'auto', 'half', 'float16', 'bfloat16', 'float' or 'float32'"),
    ("max_num_seqs", 0, "greater than or equal to 1"),
])
def test_vllm_refuses_settings_it_cannot_run(field, value, why, model_dir, plans):
    """The check can fail: a value vLLM refuses on any platform raises, in vLLM's words."""
    from vllm import AsyncEngineArgs

    model = next(m for m in plans["models"] if m["server"] == "rayserve")
    settings = EngineSettings(**{**model["settings"], field: value})
    with pytest.raises(Exception) as refused:
        AsyncEngineArgs(**engine_kwargs(settings, model_dir(model["config"]))).create_engine_config()
    assert why in str(refused.value)
