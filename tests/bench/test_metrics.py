"""components/metrics.py and the dashboard offline: the JSON is what the module builds, every panel has the queries
the issue asks for, DCGM names are the exporter's default counters, and the queries parse the way the names say.
(The vLLM names against a real server: test_metrics_live.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from components import metrics as m
from components.dashboards import vllm as dash
from tests.bench.test_metrics_live import project_sources

REPO = Path(__file__).resolve().parents[2]
DCGM_CSV = REPO / "components" / "data" / "dcgm-default-counters.csv"


def dcgm_default_counters() -> set[str]:
    names = set()
    for line in DCGM_CSV.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.split(",")[0].strip())
    return names


def test_the_dcgm_file_says_where_it_comes_from():
    head = DCGM_CSV.read_text().splitlines()[:3]
    assert head[0].startswith("# Source: NVIDIA/dcgm-exporter, etc/default-counters.csv at commit ")
    assert re.search(r"\b20\d\d-\d\d-\d\d\b", "\n".join(DCGM_CSV.read_text().splitlines()[:4]))
    assert {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED"} <= dcgm_default_counters()
    assert "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL" not in dcgm_default_counters()  # commented out upstream


def test_every_dcgm_name_used_is_a_default_counter():
    used = set(m.DCGM_METRICS)
    for expr in dash.expressions(json.loads(dash.PATH.read_text())):
        used |= {n for n in m.referenced_metrics(expr) if n.startswith("DCGM_")}
    for path in project_sources():
        used |= {n for n in m.referenced_metrics(path.read_text()) if n.startswith("DCGM_")}
    assert used and not used - dcgm_default_counters(), used - dcgm_default_counters()


def test_the_dashboard_json_is_what_the_module_builds():
    assert dash.PATH.read_text() == dash.render(), "run python -m components.dashboards.vllm"


def test_the_dashboard_has_the_panels_the_issue_asks_for():
    d = json.loads(dash.PATH.read_text())
    by_title = {p["title"]: p for p in d["panels"]}
    exprs = {t: " ".join(x["expr"] for x in p["targets"]) for t, p in by_title.items()}
    assert m.TIME_TO_FIRST_TOKEN in exprs["Time to first token"]
    assert m.INTER_TOKEN_LATENCY in exprs["Inter-token latency"]
    assert m.NUM_REQUESTS_WAITING in exprs["Queue depth per replica"]
    assert m.NUM_REQUESTS_RUNNING in exprs["Queue depth per replica"]
    assert m.KV_CACHE_USAGE in exprs["KV-cache usage per replica"]
    assert m.GENERATION_TOKENS in exprs["Tokens per second"]
    assert m.DCGM_GPU_UTIL in exprs["GPU utilization"]
    assert "$hourly_usd" in exprs["Instance $/h"] and "$hourly_usd" in exprs["$ per 1M output tokens"]
    assert {v["name"] for v in d["templating"]["list"]} == {"datasource", "namespace", "hourly_usd"}
    assert len({p["id"] for p in d["panels"]}) == len(d["panels"])
    for p in d["panels"]:
        assert p["datasource"] == dash.DATASOURCE and p["targets"]
        x, w = p["gridPos"]["x"], p["gridPos"]["w"]
        assert 0 <= x and x + w <= 24


def test_a_stack_sets_its_price_and_namespace():
    d = dash.dashboard(hourly_usd=0.9776, namespace="qwen3-1-7b")
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["hourly_usd"]["current"]["value"] == "0.9776"
    assert variables["namespace"]["current"]["value"] == "qwen3-1-7b"


def test_dashboard_expressions_name_only_known_vllm_metrics():
    known = set(m.VLLM_METRICS)
    for expr in dash.expressions(json.loads(dash.PATH.read_text())):
        for name in m.referenced_metrics(expr):
            if name.startswith("vllm:"):
                assert m.family(name) in known, (name, expr)


def test_scale_signals():
    names = {s.name: s for s in m.SCALE_SIGNALS}
    assert set(names) == {"requests_waiting", "kv_cache_usage"}
    assert names["requests_waiting"].query("qwen3-1-7b") == \
        'avg(sum by (pod) (vllm:num_requests_waiting{namespace="qwen3-1-7b"}))'
    assert names["kv_cache_usage"].total("ns", "Qwen/Qwen3-1.7B") == \
        'sum(max by (pod) (vllm:kv_cache_usage_perc{namespace="ns", model_name="Qwen/Qwen3-1.7B"}))'
    for s in m.SCALE_SIGNALS:
        assert m.referenced_metrics(s.per_replica("a", None)) == {s.metric}


def test_queries():
    assert m.ttft_quantile_query(0.9, "ns") == (
        'histogram_quantile(0.9, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{namespace="ns"}[5m])))')
    assert m.usd_per_million_output_tokens_query(1.5, "ns") == (
        '1.5 * 1e6 / (3600 * sum(rate(vllm:generation_tokens_total{namespace="ns"}[5m])))')
    assert m.gpu_utilization_query("ns") == 'avg by (pod, gpu) (DCGM_FI_DEV_GPU_UTIL{namespace="ns"})'
    assert m.selector() == "" and m.selector('a"b') == '{namespace="a\\"b"}'


@pytest.mark.parametrize("text, names", [
    ('sum(rate(vllm:generation_tokens_total{namespace="x"}[1m]))', {"vllm:generation_tokens_total"}),
    ("histogram_quantile(0.5, rate(vllm:e2e_request_latency_seconds_bucket[5m]))",
     {"vllm:e2e_request_latency_seconds_bucket"}),
    ("ray_vllm:num_requests_waiting + DCGM_FI_DEV_GPU_UTIL", {"DCGM_FI_DEV_GPU_UTIL"}),
    ("label_values(vllm:num_requests_waiting, namespace)", {"vllm:num_requests_waiting"}),
])
def test_referenced_metrics(text, names):
    assert m.referenced_metrics(text) == names


def test_exposed_names_and_family():
    text = ('# HELP vllm:x help\n# TYPE vllm:x histogram\nvllm:x_bucket{le="0.1",model_name="m"} 1.0\n'
            'vllm:x_count{model_name="m"} 1.0\nvllm:num_requests_waiting{engine="0"} 0.0\n')
    assert m.exposed_names(text) == {"vllm:x_bucket", "vllm:x_count", "vllm:num_requests_waiting"}
    assert m.family("vllm:x_bucket") == "vllm:x" and m.family("vllm:generation_tokens_total") == \
        "vllm:generation_tokens_total"
