"""The routing dashboard: how the routers spread each model's requests and what the prefix cache gains from it.

Panels: vLLM's prefix-cache hit rate per replica (vllm:prefix_cache_hits_total / _queries_total, the number the A/B
compares), requests waiting and running per replica (the queue; KEDA scales on the same series), the router's
requests per replica and in flight per replica (vllm_router_processed_requests_total, vllm_router_running_requests),
its policy decisions per replica, and cache_aware's outcome per request (vllm_router_prefix_routing_decisions_total:
the router's own guess, before vLLM's cache answers). vllm_router_* names as vllm-router 0.1.17 exports them (read off
its /metrics in `make ab-routing`; tests/program/data/ holds that capture).
"""

from __future__ import annotations

from typing import Any

from components import metrics as m

from .vllm import _panel, _target

UID = "llm-eks-routing"
PREFIX_HITS = "vllm:prefix_cache_hits_total"  # tokens found in the prefix cache (vLLM v1)
PREFIX_QUERIES = "vllm:prefix_cache_queries_total"  # tokens looked up
ROUTER_PROCESSED = "vllm_router_processed_requests_total"  # label worker
ROUTER_RUNNING = "vllm_router_running_requests"  # label worker
ROUTER_DECISIONS = "vllm_router_policy_decisions_total"  # labels policy, worker
# cache_aware's outcome per request: prefix_hit / prefix_miss (its tree's match against the threshold), or
# missing_tokens (the replica would not render the prompt's tokens: see plan/models.py, --enable-scale-out)
ROUTER_PREFIX_DECISIONS = "vllm_router_prefix_routing_decisions_total"
ROUTER_METRICS = (ROUTER_PROCESSED, ROUTER_RUNNING, ROUTER_DECISIONS, ROUTER_PREFIX_DECISIONS)
WINDOW = "5m"


def prefix_hit_rate_query(namespaces: str) -> str:
    sel = f'{{namespace=~"{namespaces}"}}'
    return (f"sum by (namespace, pod) (rate({PREFIX_HITS}{sel}[{WINDOW}])) / "
            f"sum by (namespace, pod) (rate({PREFIX_QUERIES}{sel}[{WINDOW}]))")


def panels(namespaces: str) -> list[dict[str, Any]]:
    sel = f'{{namespace=~"{namespaces}"}}'
    return [
        _panel(1, "timeseries", "Prefix-cache hit rate per replica", (0, 0, 12, 8),
               [_target(prefix_hit_rate_query(namespaces), "{{namespace}} {{pod}}", "A")], "percentunit",
               "Prompt tokens served from vLLM's prefix cache over tokens looked up, per replica. Cache-aware routing "
               "raises it: a chat's next turn lands where its prefix is.", min=0, max=1),
        _panel(2, "timeseries", "Queue per replica", (12, 0, 12, 8),
               [_target(f"sum by (namespace, pod) ({m.NUM_REQUESTS_WAITING}{sel})", "waiting {{pod}}", "A"),
                _target(f"sum by (namespace, pod) ({m.NUM_REQUESTS_RUNNING}{sel})", "running {{pod}}", "B")],
               "short", "Requests waiting and running in each replica's vLLM (the series KEDA scales on)."),
        _panel(3, "timeseries", "Router: requests per second per replica", (0, 8, 12, 8),
               [_target(f"sum by (worker) (rate({ROUTER_PROCESSED}[{m.RATE_WINDOW}]))", "{{worker}}", "A")],
               "reqps", "Requests each router sent to each replica (worker = the replica's URL)."),
        _panel(4, "timeseries", "Router: in flight per replica", (12, 8, 12, 8),
               [_target(f"sum by (worker) ({ROUTER_RUNNING})", "{{worker}}", "A")], "short",
               "Requests a router has sent to a replica and not yet seen finish: the load cache_aware balances."),
        _panel(5, "timeseries", "Router: policy decisions", (0, 16, 12, 8),
               [_target(f"sum by (policy, worker) (rate({ROUTER_DECISIONS}[{m.RATE_WINDOW}]))",
                        "{{policy}} {{worker}}", "A")], "reqps", "Which replica each policy picked, per second."),
        _panel(6, "timeseries", "Router: cache-aware outcomes", (12, 16, 12, 8),
               [_target(f"sum by (outcome) (rate({ROUTER_PREFIX_DECISIONS}[{m.RATE_WINDOW}]))", "{{outcome}}", "A")],
               "reqps", "The cache_aware policy's own prefix tree: prefix_hit sends the request to the replica that "
               "served the longest matching prefix; missing_tokens means the replica would not render the prompt "
               "(vLLM without --enable-scale-out) and the router picked without it."),
    ]


def dashboard(namespaces: list[str]) -> dict[str, Any]:
    """The stack's routing dashboard over its vLLM models' namespaces."""
    regex = "|".join(namespaces) or "none"
    return {
        "uid": UID, "title": "llm-eks: routing", "schemaVersion": 39, "version": 1, "editable": True,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s", "tags": ["llm-eks", "vllm-router"],
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus", "current": {}, "hide": 0}]},
        "panels": panels(regex),
        "annotations": {"list": []},
        "links": [], "description": f"How the routers spread the requests of {regex.replace('|', ', ')}",
    }
