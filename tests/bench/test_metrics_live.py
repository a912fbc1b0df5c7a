"""Every vLLM metric the dashboard and the autoscaler query exists in a real vLLM server's /metrics (the GPU image's line).

The server is the GPU image's vLLM line (CPU build). A metric vLLM renames (as 0.10-0.11 renamed
vllm:gpu_cache_usage_perc to vllm:kv_cache_usage_perc) fails here rather than blanking a panel or blinding KEDA.
The names are collected from components/metrics.py (constants and every query), components/dashboards/*.json and the
project's other Python sources (the autoscaler and monitors may spell names themselves).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from components import metrics as m
from components.dashboards.vllm import expressions
from components.versions import VLLM_VERSION

REPO = Path(__file__).resolve().parents[2]
COMPONENTS = REPO / "components"


SOURCE_DIRS = ("components", "plan", "serving", "config", "sizing", "chat_ui", "preview", "bench")


def project_sources() -> list[Path]:
    """The project's Python sources (not tests), but components/metrics.py, whose docstring names the removed
    metrics on purpose (its names are checked through its constants and queries)."""
    paths = [p for d in SOURCE_DIRS for p in sorted((REPO / d).rglob("*.py"))]
    return [p for p in paths if p != COMPONENTS / "metrics.py"]


def vllm_names_used() -> dict[str, set[str]]:
    """vLLM metric names (as exposed) -> where they are used."""
    used: dict[str, set[str]] = {}

    def add(names, where):
        for n in names:
            if n.startswith("vllm:"):
                used.setdefault(n, set()).add(where)

    add(m.VLLM_METRICS, "components/metrics.py constants")
    for signal in m.SCALE_SIGNALS:
        add(m.referenced_metrics(signal.per_replica("ns", "model") + signal.total("ns", "model")),
            f"SCALE_SIGNALS[{signal.name}]")
    for q in m.autoscaler_queries("ns"):
        add(m.referenced_metrics(q), "components/metrics.py autoscaler_queries")
    for path in sorted((COMPONENTS / "dashboards").glob("*.json")):
        for expr in expressions(json.loads(path.read_text())):
            add(m.referenced_metrics(expr), str(path.relative_to(REPO)))
    for path in project_sources():
        add(m.referenced_metrics(path.read_text(encoding="utf-8")), str(path.relative_to(REPO)))
    return used


@pytest.fixture(scope="module")
def exposed(vllm_server) -> set[str]:
    # Some series (histograms, token counters) appear only once a request has run: make sure one has.
    body = json.dumps({"model": vllm_server["model"], "prompt": "Hello", "max_tokens": 4}).encode()
    req = urllib.request.Request(f"{vllm_server['url']}/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310
        assert r.status == 200
    with urllib.request.urlopen(f"{vllm_server['root']}/metrics", timeout=10) as r:  # noqa: S310
        text = r.read().decode()
    return m.exposed_names(text)


def test_the_server_is_the_gpu_images_vllm_line(vllm_server):
    with urllib.request.urlopen(f"{vllm_server['root']}/version", timeout=10) as r:  # noqa: S310
        assert json.loads(r.read())["version"].split("+")[0] == VLLM_VERSION


def test_every_vllm_metric_queried_exists(exposed):
    used = vllm_names_used()
    assert len(used) >= 10
    missing = {name: sorted(where) for name, where in used.items()
               if name not in exposed and m.family(name) + "_bucket" not in exposed}
    vllm_exposed = sorted(n for n in exposed if n.startswith("vllm:"))
    assert not missing, f"not in vLLM {VLLM_VERSION}'s /metrics: {missing}\nit exposes: {vllm_exposed}"


def test_histograms_are_queried_as_buckets_and_exist(exposed):
    for metric in (m.TIME_TO_FIRST_TOKEN, m.INTER_TOKEN_LATENCY, m.E2E_REQUEST_LATENCY, m.REQUEST_QUEUE_TIME,
                   m.REQUEST_TIME_PER_OUTPUT_TOKEN):
        for suffix in ("_bucket", "_sum", "_count"):
            assert metric + suffix in exposed, metric + suffix


def test_the_removed_names_are_really_gone_and_unused(exposed):
    for name in m.VLLM_REMOVED:
        assert name not in exposed and name + "_bucket" not in exposed, name
        assert name not in vllm_names_used(), f"{name} is gone in vLLM {VLLM_VERSION} but still queried"
