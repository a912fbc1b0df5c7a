"""python -m sizing: the JSON contract, and one clear line with exit code 2 for every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sizing.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def words(text: str) -> str:
    """Rich wraps tables to the terminal: compare text with its whitespace collapsed."""
    return " ".join(text.split())


def test_budget_json_contract(capsys):
    # The truth is a vLLM 0.19.0 log (tests/sizing/data/vllm_logs/h100_v0_19.yaml): asked at that version.
    code, out, _ = run(capsys, "--model", "meta-llama/Llama-3.1-8B", "--accelerator", "h100", "--tp", "1",
                       "--gpu-memory-utilization", "0.95", "--max-model-len", "8192", "--vllm-version", "0.19.0", "--json")
    assert code == 0
    d = json.loads(out)
    assert isinstance(d["parameters"], int) and d["parameters"] == 8_030_261_248
    for key in ("weights_gib", "activation_gib", "non_torch_gib", "kv_cache_gib", "max_concurrency"):
        assert isinstance(d[key], float)
    assert d["kv_bytes_per_token"] == 2 * 32 * 8 * 128 * 2
    assert abs(d["kv_cache_tokens"] - 476_016) / 476_016 < 0.01
    assert d["fits"] is True


def test_budget_json_reports_a_misfit_without_failing(capsys):
    code, out, _ = run(capsys, "--model", "Qwen/Qwen3-32B", "--accelerator", "l4", "--max-model-len", "8192", "--json")
    assert code == 0 and json.loads(out)["fits"] is False


def test_neuron_budget_json_keeps_the_contract(capsys):
    code, out, _ = run(capsys, "--model", "meta-llama/Meta-Llama-3-8B-Instruct", "--accelerator", "inferentia2",
                       "--tp", "2", "--max-model-len", "4096", "--max-num-seqs", "10", "--json")
    d = json.loads(out)
    assert code == 0 and d["fits"] is True and d["kv_cache_tokens"] == 40960 and d["max_concurrency"] == 10


def test_plan_json_contract(capsys):
    code, out, _ = run(capsys, "--model", "Qwen/Qwen3-1.7B", "--max-model-len", "8192", "--concurrency", "4", "--json")
    assert code == 0
    d = json.loads(out)
    assert {"instance_type", "accelerators", "tensor_parallel_size", "hourly_usd", "engine_args", "resources",
            "rejected"} <= set(d)
    assert d["resources"]["requests"]["nvidia.com/gpu"] == "1"


def test_plan_table_for_people(capsys):
    code, out, _ = run(capsys, "--model", "Qwen/Qwen3-1.7B", "--max-model-len", "8192", "--concurrency", "4")
    assert code == 0 and "cheapest NVIDIA fleet" in words(out) and "rules of thumb" in out


BAD = [
    (["--model", "nobody/no-such-model", "--max-model-len", "10"], "not in the built-in catalog"),
    (["--config", "{bad}", "--max-model-len", "10"], "not valid JSON"),
    (["--config", "{bloom}", "--max-model-len", "10"], "model_type 'bloom' is not supported"),
    (["--config", "/no/such/config.json", "--max-model-len", "10"], "does not exist"),
    (["--model", "Qwen/Qwen3-1.7B", "--max-model-len", "0"], "positive integer"),
    (["--model", "Qwen/Qwen3-1.7B", "--max-model-len", "-4096"], "positive integer"),
    (["--model", "Qwen/Qwen3-1.7B", "--max-model-len", "many"], "positive integer"),
    (["--model", "Qwen/Qwen3-1.7B", "--max-model-len", "8192", "--concurrency", "0"], "positive integer"),
    (["--model", "Qwen/Qwen3-1.7B", "--max-model-len", "8192", "--accelerator", "h100", "--tp", "3"], "does not divide"),
    (["--model", "Qwen/Qwen3-1.7B", "--max-model-len", "8192", "--accelerator", "tpu-v5"], "unknown accelerator"),
    (["--model", "Qwen/Qwen3-1.7B", "--max-model-len", "8192", "--instance", "x9.huge"], "unknown instance type 'x9.huge' (--instance)"),
    (["--model", "Qwen/Qwen3-1.7B", "--max-model-len", "8192", "--gpu-memory-utilization", "1.2"], "must be a positive number at most 1, got 1.2"),
    (["--model", "Qwen/Qwen3-1.7B", "--max-model-len", "999999"], "context window"),
    (["--model", "Qwen/Qwen3-1.7B"], "--max-model-len is required"),
    (["--max-model-len", "10"], "--model or --config"),
    (["--model", "Qwen/Qwen3-1.7B", "--max-model-len", "8192", "--vendor", "tpu"], "invalid choice"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_bad_input_is_one_line_on_stderr_and_exit_2(argv, message, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"model_type": "llama", "hidden_size": 4096')
    bloom = tmp_path / "bloom.json"
    bloom.write_text('{"model_type": "bloom", "hidden_size": 64}')
    argv = [a.replace("{bad}", str(bad)).replace("{bloom}", str(bloom)) for a in argv]
    try:
        code, out, err = run(capsys, *argv)
    except SystemExit as exit_:  # argparse exits itself
        code, captured = exit_.code, capsys.readouterr()
        out, err = captured.out, captured.err
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_python_dash_m_entry_point():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    ok = subprocess.run([sys.executable, "-m", "sizing", "--model", "Qwen/Qwen3-1.7B", "--max-model-len", "8192",
                         "--concurrency", "4", "--json"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["instance_type"]
    bad = subprocess.run([sys.executable, "-m", "sizing", "--model", "Qwen/Qwen3-1.7B", "--max-model-len", "0"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_unknown_model_without_a_network_fails_fast_in_one_line(monkeypatch, capsys):
    import socket

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    code, out, err = run(capsys, "--model", "someorg/some-model", "--max-model-len", "4096")
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert "cannot be reached" in line and "--config" in line
