"""Autoscaling on serving load: KEDA (pinned chart) scales a vLLM Deployment between `replicas.min` and `replicas.max`
on what its replicas report to Prometheus; Karpenter adds GPU nodes for the new pods within the NodePool limit the
plan already computed. Ray Serve on Neuron scales itself: ray_serve_autoscaling_config() gives it the same bounds,
targets and delays.

The signals, per replica (a ScaledObject's Prometheus triggers with metricType AverageValue: the HPA divides the
query's sum by the current replicas and wants ceil(sum / threshold) replicas; the largest wish of all triggers wins):

- requests waiting (`vllm:num_requests_waiting`): a queue means every batch slot or the KV cache is taken;
- KV-cache usage (`vllm:kv_cache_usage_perc`, 0..1): long contexts fill memory before the batch is full; vLLM
  preempts at 1.0;
- requests running (`vllm:num_requests_running`), threshold the plan's concurrency per replica: the load signal
  that keeps replicas while they are busy. Waiting alone cannot: once new replicas drain the queue it reads 0 and
  would ask for the minimum, so busy replicas would be removed and the queue would come back.

Scale-up adds one pod per period (a new replica needs a node, an image and the weights: minutes; adding more while
it starts would overshoot). Scale-down waits for a stabilization window of low load and removes one pod per period;
the removed pod then finishes its in-flight requests: the Service drops it at once, preStop sleeps 15 s, and vLLM
(with `--shutdown-timeout`, plan/scaling.py) waits for running requests before exiting, all inside the
Deployment's terminationGracePeriodSeconds (120 s, components/model_server.py). The PodDisruptionBudget
(maxUnavailable 1) concerns evictions (drains), not scale-down, and stays as it is.

A model with replicas.min 0 (components/scale_to_zero.py) gets one more trigger, the KEDA HTTP add-on's count of its
requests (external-push): vLLM reports nothing without a replica, so only the add-on, which holds the requests, can
wake it. KEDA scales 0 -> 1 as soon as that trigger is active, and 1 -> 0 once no trigger has been active for
cooldownPeriod; in between the HPA works as above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from plan.models import ModelPlan
from config.names import KEDA_NAMESPACE, SYSTEM_NODE_LABELS
from plan.scaling import ScalingThresholds

from . import helm, metrics, scale_to_zero, versions

NAMESPACE = KEDA_NAMESPACE
RELEASE = "keda"

# vLLM 0.19.1 metric names and PromQL: components/metrics.py (held against a live vLLM /metrics by tests/bench).

def keda_scaled(model: ModelPlan) -> bool:
    """A vLLM Deployment whose bounds leave room gets a ScaledObject (Ray Serve on Neuron scales itself)."""
    return model.autoscaled and model.server == "vllm"


def needed(models: list[ModelPlan]) -> bool:
    """Whether a stack needs KEDA at all."""
    return any(map(keda_scaled, models))


@dataclass(frozen=True)
class ScalingBehavior:
    polling_seconds: int = 15  # KEDA's query interval (Prometheus scrapes every 15 s)
    scale_up_stabilization_seconds: int = 60  # the lowest wish of the last minute: a burst must last
    scale_up_period_seconds: int = 180  # at most one new pod per period
    scale_down_stabilization_seconds: int = 600  # the highest wish of the last 10 minutes
    scale_down_period_seconds: int = 300  # at most one pod removed per period
    cooldown_seconds: int = 300  # KEDA's cooldownPeriod: idle this long, a model with replicas.min 0 goes to zero


def queries(model: ModelPlan) -> dict[str, str]:
    """Sums over the model's pods (Prometheus adds `namespace` from the scraped pod; only the model's vLLM pods run in
    its namespace): an AverageValue trigger divides them by the replica count."""
    ns = model.namespace
    return {"waiting": metrics.waiting_total_query(ns), "kv": metrics.kv_cache_usage_total_query(ns),
            "running": metrics.running_total_query(ns)}


def _threshold(x: float) -> str:
    return f"{x:g}"


def scaled_object(model: ModelPlan, thresholds: ScalingThresholds, prometheus_url: str,
                  behavior: ScalingBehavior = ScalingBehavior()) -> dict[str, Any]:
    """The KEDA ScaledObject for one model's Deployment (name and namespace: the model's name)."""
    if not keda_scaled(model):
        raise ValueError(f"{model.name}: no autoscaling (server {model.server}, replicas {model.spec.replicas})")
    q = queries(model)

    def trigger(name: str, query: str, threshold: float) -> dict[str, Any]:
        return {"type": "prometheus", "name": name, "metricType": "AverageValue",
                "metadata": {"serverAddress": prometheus_url, "query": query, "threshold": _threshold(threshold),
                             # no pod reporting yet (all starting) reads as 0, not as an error
                             "ignoreNullValues": "true"}}

    triggers = [trigger("requests-waiting", q["waiting"], thresholds.waiting_per_replica),
                trigger("kv-cache-usage", q["kv"], thresholds.kv_cache_usage)]
    if thresholds.running_per_replica is not None:
        triggers.append(trigger("requests-running", q["running"], thresholds.running_per_replica))
    if model.scales_to_zero:
        triggers.append(scale_to_zero.http_trigger(model))
    b = behavior
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": model.name, "namespace": model.namespace, "labels": {"app.kubernetes.io/part-of": "llm-eks"}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": model.name},
            "minReplicaCount": model.spec.replicas.min,  # 0: the HTTP add-on's trigger wakes it
            "maxReplicaCount": model.spec.replicas.max,
            "pollingInterval": b.polling_seconds,
            "cooldownPeriod": b.cooldown_seconds,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                "scaleUp": {"stabilizationWindowSeconds": b.scale_up_stabilization_seconds, "selectPolicy": "Max",
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": b.scale_up_period_seconds}]},
                "scaleDown": {"stabilizationWindowSeconds": b.scale_down_stabilization_seconds, "selectPolicy": "Max",
                              "policies": [{"type": "Pods", "value": 1, "periodSeconds": b.scale_down_period_seconds}]},
            }}},
            "triggers": triggers,
        },
    }


def ray_serve_autoscaling_config(model: ModelPlan, thresholds: ScalingThresholds,
                                 behavior: ScalingBehavior = ScalingBehavior()) -> dict[str, Any]:
    """Ray Serve's autoscaling_config (Ray 2.53 ray.serve.config.AutoscalingConfig) from the same bounds and
    targets: Serve compares ongoing requests per replica (running plus queued in the replica) with
    target_ongoing_requests, so the target is the running threshold (the planned concurrency per replica), or the
    compiled batch if there is none; the delays are the stabilization windows above. KV usage has no Serve
    counterpart (NxDI preallocates the cache per compiled sequence)."""
    r = model.spec.replicas
    target = thresholds.running_per_replica or model.plan.max_num_seqs
    return {
        "min_replicas": r.min,
        "initial_replicas": model.plan.replicas,
        "max_replicas": r.max,
        "target_ongoing_requests": target,
        "upscale_delay_s": behavior.scale_up_stabilization_seconds,
        "downscale_delay_s": behavior.scale_down_stabilization_seconds,
    }


def keda_values() -> dict[str, Any]:
    """KEDA 2.20.2's operator, metrics API server and admission webhooks on the system nodes, with requests sized
    for a handful of ScaledObjects (upstream's limits of 1 CPU / 1000Mi each are far above what they use)."""
    small = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    return {
        "nodeSelector": dict(SYSTEM_NODE_LABELS),
        "resources": {"operator": small, "metricServer": small, "webhooks": small},
    }


@dataclass
class AutoscalingArgs:
    models: list[ModelPlan]  # every model; only autoscaled() ones get a ScaledObject
    provider: k8s.Provider
    prometheus_url: str  # components.monitoring.prometheus_url(): a name the chart derives, known before deploy
    # Each model's server (its Deployment must exist before KEDA takes it over), by model name.
    servers: dict[str, pulumi.Resource]
    behavior: ScalingBehavior = field(default_factory=ScalingBehavior)
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # system nodes; the Prometheus release


class Autoscaling(pulumi.ComponentResource):
    """The KEDA release and one ScaledObject per autoscaled model; `scaled_objects` maps model name to its
    ScaledObject's name. Where a model scales to zero, also the KEDA HTTP add-on's release and that model's wake
    Service and InterceptorRoutes (components/scale_to_zero.py); `wake` lists them, for the routers to wait on."""

    def __init__(self, name: str, args: AutoscalingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:autoscaling:Autoscaling", name, None, opts)
        k8s_opts = dict(parent=self, provider=args.provider)
        self.release = helm.release(
            f"{name}-keda", RELEASE, versions.KEDA, NAMESPACE,
            pulumi.ResourceOptions(**k8s_opts, depends_on=list(args.depends_on)),
            values=keda_values(), create_namespace=True, timeout_seconds=helm.SYSTEM_NODES_SECONDS,
        )
        self.wake: list[pulumi.Resource] = []
        sleepers = [m for m in args.models if m.scales_to_zero]
        if sleepers:
            # the add-on's interceptor ScaledObject needs KEDA's CRDs
            self.wake.append(helm.release(
                f"{name}-http-add-on", scale_to_zero.RELEASE, versions.KEDA_HTTP_ADD_ON, NAMESPACE,
                pulumi.ResourceOptions(**k8s_opts, depends_on=[self.release, *args.depends_on]),
                values=scale_to_zero.addon_values(), create_namespace=False,
                timeout_seconds=helm.SYSTEM_NODES_SECONDS,
            ))
        addon = list(self.wake)
        for model in sleepers:
            for obj in scale_to_zero.manifests(model):
                opts = pulumi.ResourceOptions(**k8s_opts, depends_on=[*addon, args.servers[model.name]])
                rname = f"{name}-{obj['kind'].lower()}-{obj['metadata']['name']}"
                if obj["kind"] == "Service":
                    self.wake.append(k8s.core.v1.Service(rname, metadata=obj["metadata"], spec=obj["spec"], opts=opts))
                else:
                    self.wake.append(k8s.apiextensions.CustomResource(
                        rname, api_version=obj["apiVersion"], kind=obj["kind"], metadata=obj["metadata"],
                        spec=obj["spec"], opts=opts))
        self.scaled_objects: dict[str, str] = {}
        for model in filter(keda_scaled, args.models):
            manifest = scaled_object(model, model.scaling, args.prometheus_url, args.behavior)
            k8s.apiextensions.CustomResource(
                f"{name}-{model.name}", api_version="keda.sh/v1alpha1", kind="ScaledObject",
                metadata=manifest["metadata"], spec=manifest["spec"],
                opts=pulumi.ResourceOptions(**k8s_opts, depends_on=[self.release, args.servers[model.name],
                                                                    *self.wake, *args.depends_on]),
            )
            self.scaled_objects[model.name] = model.name
        self.register_outputs({"scaled_objects": self.scaled_objects})
