"""Every GPU stack's `vllm serve` arguments, parsed by vLLM 0.32.0's own CLI (the GPU image's vLLM, CPU build).

components/model_server.py runs `vllm serve <args>` in vllm/vllm-openai; the arguments are parsed here exactly as
that command does (vllm.entrypoints.cli.main: a FlexibleArgumentParser with the serve subcommand's parser from
make_arg_parser, its validate(), model_tag -> model), then turned into AsyncEngineArgs (from_cli_args) and vLLM's
whole engine config (create_engine_config) on the model's config.json. A flag or value vLLM refuses fails here.
"""

from __future__ import annotations

import pytest

from .conftest import engine_version, serve_args


def refusal(argv: list[str], config: dict, model_dir, capsys) -> str | None:
    """vLLM's reason for refusing `vllm serve argv...` on a model with this config.json, or None if it takes it:
    the parser's (unknown flag, bad value) or the engine config's (a method or size this model cannot run)."""
    try:
        serve_args(argv)
    except SystemExit:
        return capsys.readouterr().err.strip().splitlines()[-1]
    try:
        serve_args([model_dir(config), *argv[1:]]).create_engine_config()
    except Exception as exc:  # noqa: BLE001 - any refusal, reported with vLLM's own words
        return f"{type(exc).__name__}: {exc}"
    return None


def test_this_engine_is_the_gpu_image_vllm(plans):
    assert engine_version() == plans["gpu_vllm"], (
        f"components/versions.py deploys vLLM {plans['gpu_vllm']} on GPUs but this engine is {engine_version()}: "
        "pin the same version in the Makefile's ENGINE_VERSIONS and a requirements-engine-<version>.txt")


def test_every_gpu_plan_parses(gpu_model, model_dir, capsys):
    argv = gpu_model["args"]
    reason = refusal(argv, gpu_model["config"], model_dir, capsys)
    assert reason is None, f"vLLM {engine_version()} refuses {gpu_model['stack']}'s `vllm serve {' '.join(argv)}`: {reason}"
    engine_args = serve_args([model_dir(gpu_model["config"]), *argv[1:]])
    # The plan's values arrive as vLLM reads them, not as a look-alike flag that parses to something else.
    flags = dict(zip(argv[1::2], argv[2::2]))
    for flag, attr in (("--tensor-parallel-size", "tensor_parallel_size"), ("--max-model-len", "max_model_len"),
                       ("--max-num-seqs", "max_num_seqs")):
        if flag in flags:
            assert getattr(engine_args, attr) == int(flags[flag])
    if "--gpu-memory-utilization" in flags:
        assert engine_args.gpu_memory_utilization == float(flags["--gpu-memory-utilization"])
    config = engine_args.create_engine_config()
    assert config.parallel_config.tensor_parallel_size == engine_args.tensor_parallel_size
    assert config.model_config.max_model_len == engine_args.max_model_len


@pytest.mark.parametrize("bad, why", [
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--tensor-parallel-size=notanumber"], "invalid int value: 'notanumber'"),
    (["--kv-cache-dtype", "int4"], "invalid choice: 'int4'"),
    (["--quantization", "int4"], "Unknown quantization method: int4"),  # parses (a free string); the config refuses
    (["--tensor-parallel-size", "3"], "must be divisible by tensor parallel size (3)"),
    (["--max-model-len", "1000000"], "greater than the derived max_model_len"),
])
def test_vllm_refuses_what_it_cannot_run(bad, why, plans, model_dir, capsys):
    """The check can fail: flags, values and sizes vLLM has no such thing for are refused, in its own words."""
    model = next(m for m in plans["models"] if m["server"] == "vllm")
    reason = refusal([model["model"], "--max-model-len", "4096", *bad], model["config"], model_dir, capsys)
    assert reason and why in reason, f"vLLM {engine_version()} on {bad}: {reason}"


def test_the_sizing_assumes_this_engines_defaults(plans, monkeypatch):
    """sizing/data/engine.yaml's entry for the pinned release against that release's own code: default utilization
    and block size (config/cache.py), CUDA-graph estimate in the KV budget (envs.py), and the OpenAI server's batch
    defaults for every NVIDIA GPU of the catalog (engine/arg_utils.py get_batch_defaults, fed the GPU's CUDA total
    memory and name as a CUDA platform reports them)."""
    from vllm import envs
    from vllm.config.cache import CacheConfig
    from vllm.engine import arg_utils
    from vllm.usage.usage_lib import UsageContext

    facts = plans["gpu_engine_facts"]
    assert facts["version"] == engine_version()
    assert CacheConfig().gpu_memory_utilization == facts["gpu_memory_utilization"]
    assert CacheConfig.DEFAULT_BLOCK_SIZE == facts["block_size"]
    monkeypatch.delenv("VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS", raising=False)
    assert envs.VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS is facts["cudagraph_in_budget"]

    class Gpu:  # the calls get_batch_defaults makes of a CUDA platform
        def __init__(self, name: str, total_gib: float):
            self.name, self.total = name, int(total_gib * 2**30)

        def is_tpu(self) -> bool:
            return False

        def is_cpu(self) -> bool:
            return False

        def get_device_total_memory(self, device_id: int = 0) -> int:
            return self.total

        def get_device_name(self, device_id: int = 0) -> str:
            return self.name

    server = UsageContext.OPENAI_API_SERVER
    for key, gpu in facts["gpus"].items():
        monkeypatch.setattr(arg_utils, "current_platform", Gpu(gpu["name"], gpu["total_gib"]))
        tokens, seqs = arg_utils.EngineArgs.get_batch_defaults(world_size=1)
        assert (tokens[server], seqs[server]) == (gpu["max_num_batched_tokens"], gpu["max_num_seqs"]), key
