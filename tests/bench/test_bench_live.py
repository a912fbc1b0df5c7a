"""The benchmark end to end against a real vLLM OpenAI server of the GPU image's line (CPU build, tiny random-weight model).

`python -m bench --url ...` runs inference-perf from .engines/bench with a tiny sweep: the table is printed, the
JSON has every field with real numbers in order, no request failed, and both PNGs are PNG images.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[2]


def test_the_cli_prints_the_tables_and_the_knee(bench_run):
    proc = bench_run["proc"]
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    out = proc.stdout
    for header in ("latency, p50 / p90 / p99", "throughput and cost", "TTFT ms", "ITL ms", "E2E s",
                   "output tok/s", "tok/s per $/h", "$ / 1M output"):
        assert header in out, f"{header!r} not in:\n{out}"
    assert "Throughput" in out  # the knee, in words
    assert "wrote" in out and "results.json" in out


def test_the_json_has_real_ordered_numbers_and_no_errors(bench_run):
    results = json.loads((bench_run["out"] / "results.json").read_text())
    assert results["schema"] == "llm-eks/bench/v1"
    assert results["generator"]["name"] == "inference-perf" and results["generator"]["version"] == "0.7.0"
    assert results["errors"] == 0 and results["not_sent"] == 0
    assert results["hourly_usd"] == 0.978
    assert [lv["concurrency"] for lv in results["levels"]] == [1, 2]
    for lv in results["levels"]:
        assert lv["errors"] == 0 and lv["not_sent"] == 0 and lv["successes"] == lv["requests"] == lv["planned"] == 6
        for key in ("ttft", "itl", "e2e", "throughput"):
            p = lv[key]
            assert p["p50"] > 0 and p["p90"] > 0 and p["p99"] > 0, (key, p)
            assert p["p50"] <= p["p90"] <= p["p99"], (key, p)
        assert lv["ttft"]["p99"] <= lv["e2e"]["p99"]
        for key in ("output_tokens_per_s", "total_tokens_per_s", "requests_per_s", "tokens_per_s_per_usd",
                    "usd_per_million_output_tokens", "duration_s"):
            assert lv[key] > 0, (key, lv[key])
        assert abs(lv["usd_per_million_output_tokens"] - 0.978 / (lv["output_tokens_per_s"] * 3600) * 1e6) < 1e-6
        # ignore_eos: every request generates what it asked for (24 +- 4, clamped to 8..40)
        assert 8 <= lv["output_tokens_mean"] <= 40
        assert 32 <= lv["prompt_tokens_mean"] <= 64
    assert results["warmup"]["concurrency"] == 1
    assert results["knee"]["words"]


def test_the_plots_are_pngs(bench_run):
    for name in ("latency.png", "throughput.png"):
        data = (bench_run["out"] / name).read_bytes()
        assert data[:8] == PNG_MAGIC, name
        width, height = struct.unpack(">II", data[16:24])  # IHDR
        assert width >= 1000 and height >= 400, (name, width, height)


def test_the_run_is_short(bench_run):
    assert bench_run["seconds"] < 180, f"the live benchmark took {bench_run['seconds']:.0f} s"


def test_the_chat_api_path(vllm_server, bench_venv, tmp_path):
    """--api chat, for a server without /v1/completions: inference-perf 0.7.0's chat requests (prompts of about the
    asked length, 30 output tokens)."""
    command = [sys.executable, "-m", "bench", "--url", vllm_server["url"], "--api", "chat", "--input-tokens", "48",
               "--output-tokens", "16", "--concurrency", "2", "--requests-per-level", "4", "--warmup", "0",
               "--no-plots", "--out", str(tmp_path)]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LLM_EKS_BENCH_VENV": str(bench_venv)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    (level,) = json.loads((tmp_path / "results.json").read_text())["levels"]
    assert level["errors"] == 0 and level["not_sent"] == 0 and level["successes"] == 4
    assert 20 <= level["output_tokens_mean"] <= 31  # max_tokens=30 (the tiny model may stop earlier than ignore_eos)
    assert 0 < level["ttft"]["p50"] <= level["ttft"]["p99"]
