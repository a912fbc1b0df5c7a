"""What the benchmark says when things go wrong: the generator's own cause on the terminal (from a real inference-perf
0.7.0 log, recorded offline: its tokenizer could not load), a warning when the URL serves another model than the
stack's, and knee words without a negative zero."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.results import Level, Percentiles, find_knee
from tests.chat_ui.openai_standin import running_standin

DATA = Path(__file__).with_name("data")
# `inference-perf --config_file c.yaml` 0.7.0, HF_HUB_OFFLINE unset, no network, tokenizer Qwen/Qwen3-1.7B not in the
# cache (2026-12-06, this machine); exit code 1.
OFFLINE_TOKENIZER_LOG = DATA / "inference-perf-0.7.0-offline-tokenizer.log"
SHORT = ["--input-tokens", "64:4", "--output-tokens", "32:4", "--concurrency", "1", "--requests-per-level", "2",
         "--no-plots", "--warmup", "0"]


@pytest.fixture
def replaying_generator(tmp_path, monkeypatch):
    """A bench virtualenv whose inference-perf prints the recorded failing log and exits 1, as the real one did."""
    venv = tmp_path / "bench-venv"
    (venv / "bin").mkdir(parents=True)
    exe = venv / "bin" / "inference-perf"
    exe.write_text(f"#!{sys.executable}\nimport sys\nsys.stdout.write(open({str(OFFLINE_TOKENIZER_LOG)!r}).read())\n"
                   "sys.exit(1)\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("LLM_EKS_BENCH_VENV", str(venv))
    return venv


def test_the_generators_cause_and_the_fix_are_on_the_terminal(replaying_generator, tmp_path, capsys):
    with running_standin(models=("Qwen/Qwen3-1.7B",)) as standin:
        code = main(["qwen-g6", "--url", standin.base_url, "--out", str(tmp_path / "out"), *SHORT])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 2
    assert "inference-perf exited with 1: Exception: Tokenizer initialization failed, caused by OSError: We couldn't " \
           "connect to 'https://huggingface.co'" in out
    assert "pass --tokenizer" in out
    assert "warning" not in out  # the stand-in serves the stack's model


def test_a_url_serving_another_model_is_warned_about(replaying_generator, tmp_path, capsys):
    with running_standin(models=("meta-llama/Llama-3.2-1B",)) as standin:
        main(["qwen-g6", "--url", standin.base_url, "--out", str(tmp_path / "out"), *SHORT])
    out = " ".join(capsys.readouterr().out.split())
    assert ("serves meta-llama/Llama-3.2-1B, not the stack's Qwen/Qwen3-1.7B: the plan's figures (concurrency, $/h) "
            "are for another model") in out


def _level(c: int, tps: float) -> Level:
    p = Percentiles(1.0, 2.0, 3.0, 1.5)
    return Level(c, 8, 8, 0, 1.0, p, p, p, p, tps, tps * 2, 1.0, 512, 245)


@pytest.mark.parametrize("tps, change", [
    ((100.0, 190.0, 360.0, 359.0), "0 %"),  # -0.3 %: rounds to nothing, printed without a sign
    ((100.0, 190.0, 360.0, 340.0), "-6 %"),
    ((100.0, 190.0, 360.0, 380.0), "+6 %"),
])
def test_the_knees_change_has_no_negative_zero(tps, change):
    words = find_knee([_level(c, t) for c, t in zip((1, 2, 4, 8), tps)], 4).words
    assert f"8 gives {tps[3]:.1f}, {change})" in words
    assert "-0 %" not in words
