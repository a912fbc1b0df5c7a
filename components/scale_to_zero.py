"""Scale to zero (issue 18): a vLLM model with `replicas: {min: 0}` has no replica while idle and wakes on the first
request, through the KEDA HTTP add-on (chart keda-add-ons-http 0.15.0, kedacore/http-add-on v0.15.0).

A request's way while the model sleeps:
  endpoint (nginx, vllm-router --enable-igw) -> the model's router `route-<model>`, whose one worker is the static URL
  http://<model>-wake.<ns>.svc.cluster.local:8080 -> that ExternalName Service -> the add-on's interceptor
  (keda-add-ons-http-interceptor-proxy.keda) -> InterceptorRoute `<model>`, matched by Host (the port stripped,
  pkg/routing/key.go) and path prefix /v1 -> counted (interceptor/middleware/counting.go): the model's ScaledObject
  reads that count through its external-push trigger and KEDA scales the Deployment 0 -> 1 -> held
  (middleware/endpoint_resolver.go) until the model's Service has a ready endpoint, at most `timeouts.readiness`
  (the plan's cold-start budget, total_s), else 504 -> proxied to the Service.

Why a second InterceptorRoute, `<model>-probe` (paths /health and /v1/models): every request the interceptor routes
counts toward its route (counting.go runs before the endpoint wait), so vllm-router's worker health checks (GET
/health every --health-check-interval-secs, 60 s, core/worker.rs; and at start, until healthy) and the endpoint's
model lookup (GET /v1/models when it discovers a router, routers/router_manager.rs query_model_id) would keep the
model awake if they went to the serving route. No ScaledObject reads the probe route's count. While the model has no
ready endpoint its placeholder (middleware/placeholder.go) answers 200 at once with the model list (the body /v1/models
needs; the router reads only /health's status); with a ready replica both pass through to vLLM's own. The longest
path prefix wins (pkg/routing/tablememory.go), so /v1/models goes to the probe route, /v1/chat/... to the serving one.

Scale-down: KEDA scales 1 -> 0 once no trigger has been active for cooldownPeriod (components/autoscaling.py), and
Karpenter deletes the empty GPU node after its NodePool's consolidateAfter (components/node_pools.py, WhenEmpty).
"""

from __future__ import annotations

import json
from typing import Any

from config.names import KEDA_NAMESPACE, SYSTEM_NODE_LABELS
from plan.models import SERVE_PORT, ModelPlan

NAMESPACE = KEDA_NAMESPACE  # beside KEDA, whose operator takes the add-on's ScaledObjects
RELEASE = "keda-add-ons-http"
# The chart names its Services "<Chart.Name>-<service>" (templates/interceptor/service-proxy.yaml, scaler/service.yaml
# @ kedacore/charts c4b92e9e), whatever the release is called.
INTERCEPTOR_SERVICE = "keda-add-ons-http-interceptor-proxy"
SCALER_SERVICE = "keda-add-ons-http-external-scaler"
PROXY_PORT = 8080  # values.yaml interceptor.proxy.port
SCALER_PORT = 9090  # values.yaml scaler.grpcPort
SCALER_ADDRESS = f"{SCALER_SERVICE}.{NAMESPACE}:{SCALER_PORT}"
INTERCEPTOR_HOST = f"{INTERCEPTOR_SERVICE}.{NAMESPACE}.svc.cluster.local"
# vLLM answers a non-streamed completion's headers only when it is done: as long as the routers allow a request
# (vllm-router --request-timeout-secs 1800, components/router.py). The cold-start wait is not part of it.
RESPONSE_HEADER_TIMEOUT_S = 1800
SERVE_PATHS = ("/v1",)
PROBE_PATHS = ("/health", "/v1/models")
PART_OF = {"app.kubernetes.io/part-of": "llm-eks"}


def wake_service(model: ModelPlan) -> str:
    return f"{model.name}-wake"


def wake_host(model: ModelPlan) -> str:
    """The host the interceptor routes this model by: the ExternalName Service's name, which the router's requests
    carry as their Host header."""
    return f"{wake_service(model)}.{model.namespace}.svc.cluster.local"


def worker_url(model: ModelPlan) -> str:
    """The model router's one static worker (vllm-router --worker-urls)."""
    return f"http://{wake_host(model)}:{PROXY_PORT}"


def openai_url(model: ModelPlan) -> str:
    """The model's OpenAI base URL through the interceptor (the benchmark's, which measures one model directly)."""
    return f"{worker_url(model)}/v1"


def wake_timeout_s(model: ModelPlan) -> int:
    """How long a request may wait for a replica: the plan's cold-start budget, from nothing to the first token."""
    return model.wake_s


def models_body(model: ModelPlan) -> str:
    """GET /v1/models as vLLM answers it, for the one model (what the endpoint's router reads the model id from)."""
    return json.dumps({"object": "list", "data": [{"id": model.spec.model, "object": "model", "created": 0,
                                                   "owned_by": "llm-eks", "root": model.spec.model}]},
                      separators=(",", ":"))


def _route(model: ModelPlan, name: str, paths: tuple[str, ...], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "http.keda.sh/v1beta1", "kind": "InterceptorRoute",
        "metadata": {"name": name, "namespace": model.namespace, "labels": dict(PART_OF)},
        "spec": {
            "target": {"service": model.name, "port": SERVE_PORT},
            "rules": [{"hosts": [wake_host(model)], "paths": [{"value": p} for p in paths]}],
            **spec,
        },
    }


def serve_route(model: ModelPlan) -> dict[str, Any]:
    """The model's traffic: counted for scaling, held while the model wakes (up to its cold-start budget)."""
    target = model.scaling.running_per_replica if model.scaling else None
    return _route(model, model.name, SERVE_PATHS,
                  # in-flight requests per replica: the load one replica was sized for, as the running trigger
                  scalingMetric={"concurrency": {"targetValue": int(target or model.plan.concurrency_per_replica)}},
                  timeouts={"readiness": f"{wake_timeout_s(model)}s",
                            "responseHeader": f"{RESPONSE_HEADER_TIMEOUT_S}s"})


def probe_route(model: ModelPlan) -> dict[str, Any]:
    """The router's health checks and model lookup: answered without a replica, never counted by a ScaledObject."""
    return _route(model, f"{model.name}-probe", PROBE_PATHS,
                  scalingMetric={"concurrency": {"targetValue": 1}},  # required by the CRD; no ScaledObject reads it
                  coldStart={"placeholder": {"response": {
                      "statusCode": 200, "headers": {"Content-Type": "application/json"},
                      "body": models_body(model)}}})


def wake_service_manifest(model: ModelPlan) -> dict[str, Any]:
    """A name in the model's namespace for the interceptor: the router's requests carry it as their Host."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": wake_service(model), "namespace": model.namespace, "labels": dict(PART_OF)},
        "spec": {"type": "ExternalName", "externalName": INTERCEPTOR_HOST,
                 "ports": [{"name": "http", "port": PROXY_PORT, "protocol": "TCP"}]},
    }


def manifests(model: ModelPlan) -> list[dict[str, Any]]:
    if not model.scales_to_zero:
        raise ValueError(f"{model.name}: replicas.min is {model.spec.replicas.min} on {model.server}, not 0 on vllm")
    return [wake_service_manifest(model), serve_route(model), probe_route(model)]


def http_trigger(model: ModelPlan) -> dict[str, Any]:
    """The ScaledObject trigger that wakes the model: the interceptor's count of the serving route's requests."""
    return {"type": "external-push", "name": "http-requests",
            "metadata": {"scalerAddress": SCALER_ADDRESS, "interceptorRoute": model.name}}


def addon_values() -> dict[str, Any]:
    """keda-add-ons-http 0.15.0 on the system nodes. Two interceptors (one per system node; upstream's minimum is 3)
    with room to hold requests while a model wakes; one scaler and one operator, with requests sized like KEDA's."""
    small = {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}
    placement = {"nodeSelector": dict(SYSTEM_NODE_LABELS)}
    return {
        "operator": {**placement, "resources": small},
        "scaler": {**placement, "replicas": 1, "resources": small},
        "interceptor": {**placement, "replicas": {"min": 2, "max": 4},
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}},
    }
