"""Every metric name and PromQL query the stack uses: the autoscaler's signals and the Grafana dashboard's panels.

Plain constants and functions returning PromQL strings (no Pulumi): the KEDA ScaledObject, the Prometheus rules and
components/dashboards/vllm.json all take their queries from here, and tests/bench/test_metrics_live.py holds every
vLLM name here against a real vLLM server's /metrics of the GPU image's line (0.32.0) (the GPU image's line), so a metric vLLM renames fails
a test instead of a dashboard going blank or an autoscaler going blind. DCGM names are held against the exporter's
default counters (components/data/dcgm-default-counters.csv).

vLLM's names, as vllm/v1/metrics/loggers.py registers them (0.19.1 to 0.32.0: the same names) (prometheus_client adds `_total` to counters and
`_bucket`/`_sum`/`_count` to histograms); two older names are gone there and must not be used:
`vllm:gpu_cache_usage_perc` (now `vllm:kv_cache_usage_perc`) and `vllm:time_per_output_token_seconds` (now
`vllm:inter_token_latency_seconds`, per token, and `vllm:request_time_per_output_token_seconds`, per request).
Every vLLM series carries `model_name` (the served model, e.g. Qwen/Qwen3-1.7B) and `engine` labels; the
PodMonitor's target labels add `namespace` and `pod`, which is how queries select one model (its namespace).

DCGM exporter series carry the GPU's pod as `namespace`/`pod` when its ServiceMonitor keeps the exporter's own labels
(`honorLabels: true`); otherwise Prometheus renames them `exported_namespace`/`exported_pod` (DCGM_NAMESPACE_LABEL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

# --- vLLM (v1 engine, 0.19.1-0.32.0) --------------------------------------------------------------------------------
# Gauges: scheduler state per engine.
NUM_REQUESTS_WAITING = "vllm:num_requests_waiting"  # requests queued, not yet scheduled (none of their KV allocated)
NUM_REQUESTS_RUNNING = "vllm:num_requests_running"  # requests in the running batch
KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"  # fraction of KV-cache blocks in use, 0..1 (despite the name)
# Counters (exposed with _total).
GENERATION_TOKENS = "vllm:generation_tokens_total"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
REQUEST_SUCCESS = "vllm:request_success_total"  # label finished_reason: stop, length, abort, ...
NUM_PREEMPTIONS = "vllm:num_preemptions_total"  # requests evicted from the KV cache and recomputed later
# Histograms (exposed with _bucket, _sum, _count).
TIME_TO_FIRST_TOKEN = "vllm:time_to_first_token_seconds"
INTER_TOKEN_LATENCY = "vllm:inter_token_latency_seconds"
REQUEST_TIME_PER_OUTPUT_TOKEN = "vllm:request_time_per_output_token_seconds"
E2E_REQUEST_LATENCY = "vllm:e2e_request_latency_seconds"
REQUEST_QUEUE_TIME = "vllm:request_queue_time_seconds"

VLLM_METRICS: tuple[str, ...] = (
    NUM_REQUESTS_WAITING, NUM_REQUESTS_RUNNING, KV_CACHE_USAGE, GENERATION_TOKENS, PROMPT_TOKENS, REQUEST_SUCCESS,
    NUM_PREEMPTIONS, TIME_TO_FIRST_TOKEN, INTER_TOKEN_LATENCY, REQUEST_TIME_PER_OUTPUT_TOKEN, E2E_REQUEST_LATENCY,
    REQUEST_QUEUE_TIME,
)
# Names older vLLM lines exported that 0.19.1 and later no longer do (a query using one shows nothing).
VLLM_REMOVED: tuple[str, ...] = ("vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds")

# --- NVIDIA DCGM exporter (default counters) --------------------------------------------------------------------
DCGM_GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"  # gauge, % of time a kernel ran
DCGM_FB_USED = "DCGM_FI_DEV_FB_USED"  # gauge, MiB of framebuffer used
DCGM_FB_FREE = "DCGM_FI_DEV_FB_FREE"
DCGM_POWER_USAGE = "DCGM_FI_DEV_POWER_USAGE"  # gauge, W
DCGM_METRICS: tuple[str, ...] = (DCGM_GPU_UTIL, DCGM_FB_USED, DCGM_FB_FREE, DCGM_POWER_USAGE)
DCGM_NAMESPACE_LABEL = "namespace"  # needs honorLabels: true on the DCGM exporter's ServiceMonitor

NAMESPACE_LABEL = "namespace"  # added by the PodMonitor (the pod's namespace = the model's name)
MODEL_NAME_LABEL = "model_name"  # vLLM's own label: the served model id

DEFAULT_WINDOW = "5m"
RATE_WINDOW = "1m"


def selector(namespace: str | None = None, model: str | None = None, label: str = NAMESPACE_LABEL) -> str:
    """A label selector for one model's series: its namespace, and optionally the served model id."""
    parts = []
    if namespace is not None:
        parts.append(f'{label}="{_escape(namespace)}"')
    if model is not None:
        parts.append(f'{MODEL_NAME_LABEL}="{_escape(model)}"')
    return "{" + ", ".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    # Dashboard variables ($namespace) pass through unchanged; quotes and backslashes are escaped.
    return value.replace("\\", "\\\\").replace('"', '\\"')


# --- Scaling signals (per replica: one pod, which may hold several engines under data parallelism) ---------------
def waiting_per_replica_query(namespace: str, model: str | None = None) -> str:
    """Requests waiting per replica, averaged over the model's pods: > 0 means the batch is full (by max_num_seqs or
    by KV cache) and new requests queue, so latency grows; the first signal to add a replica."""
    return f"avg(sum by (pod) ({NUM_REQUESTS_WAITING}{selector(namespace, model)}))"


def waiting_total_query(namespace: str, model: str | None = None) -> str:
    """Requests waiting over all replicas (for a KEDA trigger with metricType AverageValue, which divides by the
    replica count itself)."""
    return f"sum({NUM_REQUESTS_WAITING}{selector(namespace, model)})"


def running_per_replica_query(namespace: str, model: str | None = None) -> str:
    return f"avg(sum by (pod) ({NUM_REQUESTS_RUNNING}{selector(namespace, model)}))"


def running_total_query(namespace: str, model: str | None = None) -> str:
    """Requests running over all replicas (an AverageValue trigger divides by the replica count)."""
    return f"sum({NUM_REQUESTS_RUNNING}{selector(namespace, model)})"


def kv_cache_usage_query(namespace: str, model: str | None = None) -> str:
    """KV-cache usage per replica (0..1), averaged over the model's pods: near 1, vLLM preempts and queues. The
    plan's KV-cache tokens give the threshold (the fraction the planned concurrency fills)."""
    return f"avg(max by (pod) ({KV_CACHE_USAGE}{selector(namespace, model)}))"


def kv_cache_usage_total_query(namespace: str, model: str | None = None) -> str:
    """Sum of the replicas' KV-cache usage fractions (for an AverageValue trigger: KEDA divides by replicas)."""
    return f"sum(max by (pod) ({KV_CACHE_USAGE}{selector(namespace, model)}))"


def replicas_reporting_query(namespace: str, model: str | None = None) -> str:
    """How many replicas Prometheus scrapes (a scaler's sanity check: 0 means the signals are blind)."""
    return f"count(count by (pod) ({NUM_REQUESTS_WAITING}{selector(namespace, model)}))"


@dataclass(frozen=True)
class ScaleSignal:
    """One autoscaling signal: what it measures, its per-replica query (compare with a threshold per replica) and its
    total query (for triggers that divide by the replica count, e.g. KEDA's AverageValue)."""

    name: str
    metric: str
    unit: str
    description: str
    per_replica: Callable[[str, str | None], str]
    total: Callable[[str, str | None], str]

    def query(self, namespace: str, model: str | None = None) -> str:
        return self.per_replica(namespace, model)


SCALE_SIGNALS: tuple[ScaleSignal, ...] = (
    ScaleSignal("requests_waiting", NUM_REQUESTS_WAITING, "requests",
                "requests queued per replica (scale out when sustained above the threshold, e.g. 1-2)",
                waiting_per_replica_query, waiting_total_query),
    ScaleSignal("kv_cache_usage", KV_CACHE_USAGE, "fraction",
                "KV-cache blocks in use per replica, 0..1 (scale out before it nears 1 and vLLM preempts)",
                kv_cache_usage_query, kv_cache_usage_total_query),
)


# --- Dashboard queries (latency quantiles from histograms, rates from counters) ----------------------------------
def _quantile(metric: str, q: float, namespace: str | None, model: str | None, window: str) -> str:
    return (f"histogram_quantile({q:g}, sum by (le) (rate({metric}_bucket{selector(namespace, model)}[{window}])))")


def ttft_quantile_query(q: float, namespace: str | None = None, model: str | None = None,
                        window: str = DEFAULT_WINDOW) -> str:
    return _quantile(TIME_TO_FIRST_TOKEN, q, namespace, model, window)


def itl_quantile_query(q: float, namespace: str | None = None, model: str | None = None,
                       window: str = DEFAULT_WINDOW) -> str:
    return _quantile(INTER_TOKEN_LATENCY, q, namespace, model, window)


def e2e_quantile_query(q: float, namespace: str | None = None, model: str | None = None,
                       window: str = DEFAULT_WINDOW) -> str:
    return _quantile(E2E_REQUEST_LATENCY, q, namespace, model, window)


def queue_time_quantile_query(q: float, namespace: str | None = None, model: str | None = None,
                              window: str = DEFAULT_WINDOW) -> str:
    return _quantile(REQUEST_QUEUE_TIME, q, namespace, model, window)


def per_pod_query(metric: str, namespace: str | None = None, model: str | None = None, agg: str = "sum") -> str:
    """One series per replica of a gauge (e.g. NUM_REQUESTS_WAITING, KV_CACHE_USAGE with agg="max")."""
    return f"{agg} by (pod) ({metric}{selector(namespace, model)})"


def generation_tokens_per_second_query(namespace: str | None = None, model: str | None = None,
                                       window: str = RATE_WINDOW) -> str:
    return f"sum(rate({GENERATION_TOKENS}{selector(namespace, model)}[{window}]))"


def prompt_tokens_per_second_query(namespace: str | None = None, model: str | None = None,
                                   window: str = RATE_WINDOW) -> str:
    return f"sum(rate({PROMPT_TOKENS}{selector(namespace, model)}[{window}]))"


def requests_per_second_query(namespace: str | None = None, model: str | None = None,
                              window: str = RATE_WINDOW) -> str:
    return f"sum by (finished_reason) (rate({REQUEST_SUCCESS}{selector(namespace, model)}[{window}]))"


def preemptions_per_second_query(namespace: str | None = None, model: str | None = None,
                                 window: str = RATE_WINDOW) -> str:
    return f"sum(rate({NUM_PREEMPTIONS}{selector(namespace, model)}[{window}]))"


def usd_per_million_output_tokens_query(hourly_usd: str | float, namespace: str | None = None,
                                        model: str | None = None, window: str = DEFAULT_WINDOW) -> str:
    """$ per million generated tokens at the current rate: the instance's $/h (a number or a dashboard variable such
    as `$hourly_usd`) over the tokens an hour at this rate."""
    tokens = generation_tokens_per_second_query(namespace, model, window)
    return f"{hourly_usd} * 1e6 / (3600 * {tokens})"


def gpu_utilization_query(namespace: str | None = None) -> str:
    """GPU utilization (%) per GPU of the model's pods, from the DCGM exporter."""
    return f"avg by (pod, gpu) ({DCGM_GPU_UTIL}{selector(namespace, label=DCGM_NAMESPACE_LABEL)})"


def gpu_memory_used_query(namespace: str | None = None) -> str:
    return f"sum by (pod, gpu) ({DCGM_FB_USED}{selector(namespace, label=DCGM_NAMESPACE_LABEL)})"


# --- Checking queries against an exporter's names ------------------------------------------------------------------
_NAME = re.compile(r"(?<![\w:$])(vllm:[A-Za-z0-9_:]*[A-Za-z0-9_]|DCGM_FI_[A-Z0-9_]+)")
_SUFFIXES = ("_bucket", "_sum", "_count")


def referenced_metrics(promql: str) -> set[str]:
    """The vLLM and DCGM metric names a PromQL expression reads, as exposed (vllm:x_bucket stays as written)."""
    return set(_NAME.findall(promql))


def family(exposed: str) -> str:
    """A histogram series' family name (vllm:x_bucket -> vllm:x); other names unchanged."""
    for suffix in _SUFFIXES:
        if exposed.endswith(suffix):
            return exposed[: -len(suffix)]
    return exposed


def exposed_names(metrics_text: str) -> set[str]:
    """Every sample name in a Prometheus text exposition (/metrics)."""
    names = set()
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def autoscaler_queries(namespace: str = "model", model: str | None = None) -> list[str]:
    return [q for s in SCALE_SIGNALS for q in (s.per_replica(namespace, model), s.total(namespace, model))] + [
        replicas_reporting_query(namespace, model)]
