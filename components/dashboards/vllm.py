"""The Grafana dashboard for a served model, built from components/metrics.py's queries: vllm.json beside this file.

    python -m components.dashboards.vllm            # rewrite components/dashboards/vllm.json
    python -m components.dashboards.vllm --check    # exit 1 if vllm.json differs from what this builds

Panels: the instance's $/h and $ per million output tokens, TTFT, inter-token latency and end-to-end latency
(p50/p90/p99 from vLLM's histograms), queue depth (waiting and running per replica), KV-cache usage per replica,
tokens per second, preemptions, and GPU utilization and memory (DCGM exporter). Variables: the Prometheus data
source, the model's namespace, and `hourly_usd` (a text box defaulting to the plan's $/h when a stack renders it:
`dashboard(hourly_usd=plan.hourly_usd * nodes, namespace=model.name)`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from components import metrics as m

PATH = Path(__file__).with_name("vllm.json")
UID = "llm-eks-vllm"
NS = "$namespace"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
QUANTILES = (0.5, 0.9, 0.99)


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def _panel(pid: int, kind: str, title: str, grid: tuple[int, int, int, int], targets: list[dict[str, Any]],
           unit: str, description: str, **defaults: Any) -> dict[str, Any]:
    x, y, w, h = grid
    panel: dict[str, Any] = {
        "id": pid, "type": kind, "title": title, "description": description, "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit, **defaults}, "overrides": []},
        "targets": targets,
    }
    if kind == "timeseries":
        panel["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                            "tooltip": {"mode": "multi", "sort": "none"}}
    else:
        panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "value", "graphMode": "none", "textMode": "auto"}
    return panel


def _quantiles(fn, ref: str = "A") -> list[dict[str, Any]]:
    refs = "ABC"
    return [_target(fn(q, NS), f"p{int(q * 100)}", refs[i]) for i, q in enumerate(QUANTILES)]


def panels() -> list[dict[str, Any]]:
    ps = [
        _panel(1, "stat", "Instance $/h", (0, 0, 4, 4), [_target("vector($hourly_usd)", "$/h", "A")], "currencyUSD",
               "The planned instance's on-demand price times the nodes of the minimum replicas (variable hourly_usd).",
               decimals=3),
        _panel(2, "stat", "$ per 1M output tokens", (4, 0, 4, 4),
               [_target(m.usd_per_million_output_tokens_query("$hourly_usd", NS), "$/1M", "A")], "currencyUSD",
               "hourly_usd over the output tokens an hour at the last 5 minutes' rate (idle: no value).", decimals=2),
        _panel(3, "stat", "Output tokens/s", (8, 0, 4, 4),
               [_target(m.generation_tokens_per_second_query(NS), "tokens/s", "A")], "short",
               "Generated tokens per second over all replicas.", decimals=1),
        _panel(4, "stat", "Replicas reporting", (12, 0, 4, 4),
               [_target(m.replicas_reporting_query(NS), "replicas", "A")], "short",
               "vLLM pods Prometheus scrapes: what the autoscaler sees."),
        _panel(5, "stat", "Requests waiting per replica", (16, 0, 4, 4),
               [_target(m.waiting_per_replica_query(NS), "waiting", "A")], "short",
               "Autoscaling signal: requests queued per replica (vllm:num_requests_waiting)."),
        _panel(6, "stat", "KV-cache usage per replica", (20, 0, 4, 4),
               [_target(m.kv_cache_usage_query(NS), "KV cache", "A")], "percentunit",
               "Autoscaling signal: KV-cache blocks in use per replica (vllm:kv_cache_usage_perc).", max=1, min=0),
        _panel(7, "timeseries", "Time to first token", (0, 4, 8, 8), _quantiles(m.ttft_quantile_query), "s",
               "p50/p90/p99 of vllm:time_to_first_token_seconds over 5 minutes."),
        _panel(8, "timeseries", "Inter-token latency", (8, 4, 8, 8), _quantiles(m.itl_quantile_query), "s",
               "p50/p90/p99 of vllm:inter_token_latency_seconds (time between two output tokens) over 5 minutes."),
        _panel(9, "timeseries", "End-to-end request latency", (16, 4, 8, 8), _quantiles(m.e2e_quantile_query), "s",
               "p50/p90/p99 of vllm:e2e_request_latency_seconds over 5 minutes."),
        _panel(10, "timeseries", "Queue depth per replica", (0, 12, 8, 8), [
            _target(m.per_pod_query(m.NUM_REQUESTS_WAITING, NS), "waiting {{pod}}", "A"),
            _target(m.per_pod_query(m.NUM_REQUESTS_RUNNING, NS), "running {{pod}}", "B"),
        ], "short", "Requests waiting (queued) and running (in the batch) per vLLM pod."),
        _panel(11, "timeseries", "KV-cache usage per replica", (8, 12, 8, 8), [
            _target(m.per_pod_query(m.KV_CACHE_USAGE, NS, agg="max"), "{{pod}}", "A"),
        ], "percentunit", "Fraction of KV-cache blocks in use per pod; near 1 vLLM preempts requests.", max=1, min=0),
        _panel(12, "timeseries", "Tokens per second", (16, 12, 8, 8), [
            _target(m.generation_tokens_per_second_query(NS), "output", "A"),
            _target(m.prompt_tokens_per_second_query(NS), "prompt", "B"),
        ], "short", "Prompt and generated tokens per second over all replicas."),
        _panel(13, "timeseries", "GPU utilization", (0, 20, 8, 8), [
            _target(m.gpu_utilization_query(NS), "{{pod}} GPU {{gpu}}", "A"),
        ], "percent", "DCGM_FI_DEV_GPU_UTIL per GPU of the model's pods (DCGM exporter).", max=100, min=0),
        _panel(14, "timeseries", "GPU memory used", (8, 20, 8, 8), [
            _target(m.gpu_memory_used_query(NS), "{{pod}} GPU {{gpu}}", "A"),
        ], "decmbytes", "DCGM_FI_DEV_FB_USED per GPU: vLLM reserves gpu_memory_utilization of it at start."),
        _panel(15, "timeseries", "Requests finished and preempted", (16, 20, 8, 8), [
            _target(m.requests_per_second_query(NS), "finished: {{finished_reason}}", "A"),
            _target(m.preemptions_per_second_query(NS), "preempted", "B"),
        ], "reqps", "Finished requests per second by reason, and KV-cache preemptions per second."),
    ]
    return ps


def dashboard(hourly_usd: float | None = None, namespace: str | None = None) -> dict[str, Any]:
    """The dashboard; a stack passes its plan's $/h and the model's namespace as the variables' defaults."""
    usd = f"{hourly_usd:g}" if hourly_usd is not None else "0"
    ns_current = {"text": namespace, "value": namespace} if namespace else {}
    return {
        "uid": UID,
        "title": "llm-eks: vLLM serving",
        "tags": ["llm-eks", "vllm"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0},
            {"name": "namespace", "label": "model (namespace)", "type": "query", "datasource": DATASOURCE,
             "query": {"query": f"label_values({m.NUM_REQUESTS_WAITING}, {m.NAMESPACE_LABEL})", "refId": "ns"},
             "definition": f"label_values({m.NUM_REQUESTS_WAITING}, {m.NAMESPACE_LABEL})",
             "refresh": 2, "current": ns_current, "hide": 0, "sort": 1},
            {"name": "hourly_usd", "label": "instance $/h", "type": "textbox", "query": usd,
             "current": {"text": usd, "value": usd}, "hide": 0},
        ]},
        "panels": panels(),
    }


def expressions(d: dict[str, Any]) -> list[str]:
    """Every PromQL expression in a dashboard: panel targets and query variables."""
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    for var in d["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(var["definition"])
    return exprs


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        if PATH.read_text(encoding="utf-8") != render():
            print(f"{PATH}: out of date; run python -m components.dashboards.vllm", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(render(), encoding="utf-8")
    print(PATH)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
