"""The benchmark offline: the sweep from the plan, inference-perf's config (checked by inference-perf's own schema),
the Job manifests (strict Kubernetes validation, one per stack), results from a recorded log, the knee, and --apply
through a stand-in kubectl that replays that log."""

from __future__ import annotations

import json
import math
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench import job as jobs
from bench.__main__ import main
from bench.results import Level, Percentiles, collect, find_knee, stage_reports
from bench.workload import (INFERENCE_PERF_IMAGE, INFERENCE_PERF_VERSION, TokenDistribution, Workload, base_url,
                            inference_perf_config, sweep)
from preview.harness import available_stacks
from tests.validation import validate_core

REPO = Path(__file__).resolve().parents[2]
SAMPLE = Path(__file__).with_name("data") / "inference-perf-0.7.0.log"
SAMPLE_WORKLOAD = Workload(input_tokens=TokenDistribution(64, 4), output_tokens=TokenDistribution(32, 4),
                           concurrency=(1, 2, 4), requests_per_level=6, warmup_requests=2)


def stacks() -> list[str]:
    return available_stacks("eks")  # a SageMaker stack is refused with the reason (test_sagemaker.py)


def recorded_plans(stack: str):
    from config import load_stack_config
    from plan.models import plan_models
    from preview.harness import read_stack_config, stack_file

    raw, secrets = read_stack_config(stack_file(stack))
    return plan_models(load_stack_config(raw, set(secrets)))


# --- workload and sweep --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("predicted, cap, levels", [
    (1, None, (1, 2)),
    (4, 256, (1, 2, 4, 8)),
    (8, 256, (1, 2, 4, 8, 16)),
    (3, None, (1, 2, 3, 4)),
    (10, 10, (1, 2, 4, 8, 10)),  # Neuron: the compiled batch bounds the sweep
    (6, 4, (1, 2, 4)),
])
def test_sweep(predicted, cap, levels):
    assert sweep(predicted, cap) == levels


def test_the_default_workload_is_seed_004s():
    w = Workload()
    assert (w.input_tokens.mean, w.input_tokens.std) == (512, 20)
    assert (w.output_tokens.mean, w.output_tokens.std) == (245, 20)
    assert [w.requests_at(c) for c in (1, 2, 4)] == [8, 16, 32]  # LLMPerf's max_requests = vu * 8
    assert w.stages()[0] == {"num_requests": 2, "concurrency_level": 1}  # the warm-up
    assert w.level_of_stage(0) is None and w.level_of_stage(1) == 1


def test_requests_per_level_never_below_the_concurrency():
    assert Workload(concurrency=(1, 8), requests_per_level=2).requests_at(8) == 8


@pytest.mark.parametrize("bad", [dict(concurrency=()), dict(concurrency=(2, 1)), dict(concurrency=(0,)),
                                 dict(requests_per_level=0), dict(api="grpc")])
def test_bad_workloads_are_refused(bad):
    with pytest.raises(ValueError):
        Workload(**bad)


def test_base_url_drops_v1():
    assert base_url("http://127.0.0.1:8000/v1") == base_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000"
    assert base_url("http://h:8000") == "http://h:8000"


def test_the_config_is_valid_for_inference_perf_itself(bench_venv, tmp_path):
    cfg = inference_perf_config(Workload(), url="http://m.m.svc.cluster.local:8000/v1", tokenizer="Qwen/Qwen3-1.7B")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = ("import sys; from inference_perf.config import read_config; c = read_config(sys.argv[1]); "
            "print(c.load.type.value, [(s.concurrency_level, s.num_requests) for s in c.load.stages], "
            "c.data.input_distribution.mean, c.data.output_distribution.std_dev, c.server.base_url, "
            "c.load.request_timeout)")
    proc = subprocess.run([str(bench_venv / "bin" / "python"), "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last == ("concurrent [(1, 2), (1, 8), (2, 16), (4, 32), (8, 64), (16, 128)] 512.0 20.0 "
                    "http://m.m.svc.cluster.local:8000 300.0")


def test_the_pinned_generator_is_the_one_installed():
    pins = (REPO / "requirements-bench.txt").read_text()
    assert f"inference-perf=={INFERENCE_PERF_VERSION}\n" in pins
    assert INFERENCE_PERF_IMAGE.endswith(f":v{INFERENCE_PERF_VERSION}") and "latest" not in INFERENCE_PERF_IMAGE


# --- the Job -------------------------------------------------------------------------------------------------------
def test_the_job_reads_the_token_secret_and_pool_the_components_use():
    """The Secret the model servers mount and the CPU pool selector, from the shared names, never re-declared."""
    from components import model_namespace, scheduling

    _, job = jobs.manifests("m", {}, timeout_s=60)
    pod = job["spec"]["template"]["spec"]
    token = next(e for e in pod["containers"][0]["env"] if e["name"] == model_namespace.token_env()["name"])
    server_ref = model_namespace.token_env()["valueFrom"]["secretKeyRef"]
    assert token["valueFrom"]["secretKeyRef"] == {**server_ref, "optional": True}
    assert pod["nodeSelector"] == scheduling.cpu_placement()["nodeSelector"]
    source = (Path(jobs.__file__)).read_text(encoding="utf-8")
    for literal in ('"hf-token"', '"HF_TOKEN"', "8000", '"karpenter.sh/nodepool"'):
        assert literal not in source, literal


@pytest.mark.parametrize("stack", stacks())
def test_every_stack_renders_a_valid_job(stack, tmp_path, capsys):
    assert main([stack, "--out", str(tmp_path)]) == 0
    rendered = sorted(tmp_path.rglob("job.yaml"))
    out = capsys.readouterr().out
    assert rendered, out
    for path in rendered:
        docs = list(yaml.safe_load_all(path.read_text()))
        assert [d["kind"] for d in docs] == ["ConfigMap", "Job"]
        for d in docs:
            assert validate_core(d) == [], (path, validate_core(d))
        cm, job = docs
        ns = job["metadata"]["namespace"]
        assert cm["metadata"]["namespace"] == ns and job["metadata"]["name"] == f"bench-{ns}"
        pod = job["spec"]["template"]["spec"]
        assert pod["containers"][0]["image"] == INFERENCE_PERF_IMAGE
        assert pod["nodeSelector"] == {"karpenter.sh/nodepool": "cpu"}
        cfg = yaml.safe_load(cm["data"]["config.yaml"])
        assert cfg["server"]["base_url"] in (f"http://{ns}.{ns}.svc.cluster.local:8000",
                                             f"http://{ns}-serve-svc.{ns}.svc.cluster.local:8000",
                                             f"http://{ns}-wake.{ns}.svc.cluster.local:8080")  # scale to zero
        # one request's timeout: aiohttp's default total (300 s), plus the wake-up where the model scales to zero
        wake = 0 if not cfg["server"]["base_url"].endswith(":8080") else \
            next(p for p in recorded_plans(stack) if p.name == ns).cold_start.total_s
        assert cfg["load"]["request_timeout"] == 300 + wake
        # vLLM's server and the Ray Serve app (serving/openai_api.py) both serve /v1/completions: seed 004's exact
        # token counts everywhere
        assert cfg["data"]["type"] == "synthetic" and cfg["api"]["type"] == "completion"
        assert "multimodal" not in cfg["data"]
        assert cfg["data"]["output_distribution"]["mean"] == 245
        assert cfg["data"]["input_distribution"]["mean"] == 512
        assert cfg["data"].get("output_distribution", {"mean": 245})["mean"] == 245
        levels = [s["concurrency_level"] for s in cfg["load"]["stages"][1:]]
        assert levels[0] == 1 and levels == sorted(set(levels))
        assert "Qwen" in cfg["tokenizer"]["pretrained_model_name_or_path"] or "/" in \
            cfg["tokenizer"]["pretrained_model_name_or_path"]


def test_the_sweep_reaches_past_the_plans_concurrency(tmp_path, capsys):
    assert main(["qwen-g6", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    cfg = yaml.safe_load(list(yaml.safe_load_all((tmp_path / "job.yaml").read_text()))[0]["data"]["config.yaml"])
    assert [s["concurrency_level"] for s in cfg["load"]["stages"]] == [1, 1, 2, 4, 8]  # warm-up, then 1..2 x 4
    assert "(sizing: 4)" in out and "--apply" in out


# --- results from a recorded run -----------------------------------------------------------------------------------
def test_stage_reports_from_a_recorded_log():
    reports = stage_reports(SAMPLE.read_text().splitlines())
    assert sorted(reports) == [0, 1, 2, 3]
    results = collect(reports, SAMPLE_WORKLOAD, hourly_usd=0.98, predicted=2, target={"url": "x"},
                      generator={"name": "inference-perf"})
    assert [lv.concurrency for lv in results.levels] == [1, 2, 4] and results.warmup.requests == 2
    for lv in results.levels:
        assert lv.errors == 0 and lv.successes == 6
        for p in (lv.ttft, lv.itl, lv.e2e, lv.throughput):
            assert 0 < p.p50 <= p.p90 <= p.p99
        assert math.isclose(lv.usd_per_million_output_tokens, 0.98 / (lv.output_tokens_per_s * 3600) * 1e6)
        assert math.isclose(lv.tokens_per_s_per_usd, lv.output_tokens_per_s / 0.98)
    d = results.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["errors"] == 0 and d["knee"]["predicted"] == 2


def test_from_logs_writes_json_and_plots(tmp_path, capsys, bench_venv):
    code = main(["--url", "http://127.0.0.1:8000/v1", "--from-logs", str(SAMPLE), "--input-tokens", "64:4",
                 "--output-tokens", "32:4", "--concurrency", "1,2,4", "--requests-per-level", "6",
                 "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "No $/h" in out  # no stack, no --hourly-usd: no cost figures, said once
    d = json.loads((tmp_path / "results.json").read_text())
    assert all(lv["usd_per_million_output_tokens"] is None for lv in d["levels"])
    assert (tmp_path / "latency.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "throughput.png").read_bytes()[:4] == b"\x89PNG"


def _level(c: int, tps: float) -> Level:
    p = Percentiles(1.0, 2.0, 3.0, 1.5)
    return Level(c, 8, 8, 0, 1.0, p, p, p, p, tps, tps * 2, 1.0, 512, 245)


@pytest.mark.parametrize("tps, predicted, knee, words", [
    ([100, 190, 360, 380], 4, 4, "the concurrency the sizing predicted"),
    ([100, 105, 106, 107], 4, 1, "below the 4 the sizing predicted"),
    ([100, 190, 360, 700], 4, None, "still rising"),
    ([100, 190, 360, 370], 2, 4, "above the 2 the sizing predicted"),
    ([100, 190, 360, 370], None, 4, "Throughput stops rising at concurrency 4"),
])
def test_the_knee_in_words(tps, predicted, knee, words):
    k = find_knee([_level(c, t) for c, t in zip((1, 2, 4, 8), tps)], predicted)
    assert k.concurrency == knee and words in k.words


def test_url_without_stack_or_url_is_one_line(capsys):
    assert main([]) == 2
    assert "give a stack" in capsys.readouterr().out


def test_an_unknown_stack_is_one_line(capsys):
    assert main(["no-such-stack"]) == 2
    assert "no such stack file" in capsys.readouterr().out


# --- --apply through a stand-in kubectl ----------------------------------------------------------------------------
def test_apply_runs_the_job_and_reads_its_log(tmp_path, capsys, bench_venv, monkeypatch):
    calls = tmp_path / "calls"
    fake = tmp_path / "kubectl"
    fake.write_text(f"""#!{sys.executable}
import sys
args = sys.argv[1:]
open({str(calls)!r}, "a").write(" ".join(args) + "\\n")
if "logs" in args:
    n = open({str(calls)!r}).read().count(" logs ")
    if n == 1:  # the first attempt: the pod is still being created
        print('Error from server (BadRequest): container "inference-perf" in pod "bench-x" is waiting to start: '
              'ContainerCreating')
        sys.exit(1)
    sys.stdout.write(open({str(SAMPLE)!r}).read())
elif "get" in args:
    sys.stdout.write("1/")
""")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("KUBECTL", str(fake))
    monkeypatch.setattr("bench.runner.time.sleep", lambda s: None)
    code = main(["qwen-g6", "--apply", "--out", str(tmp_path / "out"), "--input-tokens", "64:4", "--output-tokens",
                 "32:4", "--concurrency", "1,2,4", "--requests-per-level", "6", "--no-plots"])
    out = capsys.readouterr().out
    assert code == 0, out
    log = calls.read_text().splitlines()
    assert log[0] == "-n qwen3-1-7b delete job bench-qwen3-1-7b --ignore-not-found --wait=true"
    assert log[1] == f"apply -f {tmp_path / 'out' / 'job.yaml'}"
    assert log[2] == log[3] == "-n qwen3-1-7b logs -f job/bench-qwen3-1-7b"  # retried until the pod runs
    assert log[4] == "-n qwen3-1-7b get job bench-qwen3-1-7b -o jsonpath={.status.succeeded}/{.status.failed}"
    d = json.loads((tmp_path / "out" / "results.json").read_text())
    assert d["target"]["stack"] == "qwen-g6" and d["plan"]["predicted_concurrency"] == 4
    assert d["hourly_usd"] > 0 and all(lv["usd_per_million_output_tokens"] > 0 for lv in d["levels"])
    assert "the sizing predicted" in d["knee"]["words"] or "sizing's concurrency" in d["knee"]["words"]
