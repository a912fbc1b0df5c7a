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
