"""The stack's one OpenAI endpoint: every model behind one Service, each request sent to a replica of the model it
names, chosen by that model's routing policy (cache_aware by default where a model may run several replicas).

Why vllm-router (PyPI 0.1.17, the Rust router vLLM publishes) and not production-stack's router or the Gateway API
Inference Extension: it is one pinned wheel whose policies (round_robin, cache_aware, power_of_two, ...) run on this
machine against the real vLLM, so `make ab-routing` measures the very binary deployed here; it discovers replicas
from Kubernetes by label selector in one namespace (`--service-discovery --selector --service-discovery-namespace`),
which a namespaced Role allows; and it needs no Gateway API CRDs, Envoy or an endpoint picker to install and keep.
The Inference Extension's endpoint picker only runs inside a cluster behind Envoy, so its algorithm could not be
the one measured here; production-stack's router is Python (its session/prefix routing adds a hop and a process
per request path) and ships no separate multi-model endpoint either.

Two tiers of the same binary, because vllm-router 0.1.17 does one of two things in one process:
- per model, a router in its regular mode (`route-<model>`): discovers the model's ready pods in the model's namespace
  by their labels and picks one with the model's policy (`--policy`, the stack key models[i].routing). This is the
  algorithm the A/B measures.
- the endpoint (`openai`): a router in its multi-model mode (`--enable-igw`) that discovers the per-model routers
  (their pods, in this namespace) and learns each one's model from its /v1/models, then sends every request to the
  router of the model the request names. Its own policy only spreads over one router per model. Its /v1/models
  answers `{"models": [...]}`, not OpenAI's list; nginx in the same pod answers /v1/models with the stack's models
  in OpenAI's shape (what Open WebUI and the OpenAI clients read) and passes everything else through, unbuffered.

The multi-model mode cannot take a policy per model from discovery (every discovered worker gets the one default
policy), hence the per-model routers. A model's router is ready (/readiness) only once it has a healthy replica,
so the endpoint learns a model's id only from a router that can answer for it. A model that scales to zero has one
static worker instead, the KEDA HTTP add-on's interceptor, whose probe route answers /health and /v1/models while the
model sleeps (components/scale_to_zero.py): its router is ready, and the endpoint learns its id, with no replica.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from plan.models import SERVE_PORT, ModelPlan
from config.names import MODEL_LABEL, MONITORING_NAMESPACE, ROUTER_NAMESPACE
from plan.routing import ENDPOINT_PORT, ENDPOINT_SERVICE, Route, RouterPlan

from . import scale_to_zero, versions
from .dashboards import router as router_dashboard
from .model_server import labels as vllm_labels
from .scheduling import system_placement

NAMESPACE = ROUTER_NAMESPACE
ROUTER_PORT = 8000  # a model's router: what the endpoint discovers and forwards to
IGW_PORT = 8001  # the endpoint's router, behind nginx in the same pod (loopback only)
METRICS_PORT = 29000  # vllm-router's Prometheus exporter (--prometheus-port, its default)
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
ROUTE_LABEL = "llm-eks/route"  # a model router's model (not MODEL_LABEL: that one marks a model's own pods)
ENDPOINT_LABELS = {NAME_LABEL: "vllm-router", COMPONENT_LABEL: "endpoint"}
MODEL_ROUTER_SELECTOR = {NAME_LABEL: "vllm-router", COMPONENT_LABEL: "model-router"}
# KubeRay 1.7 labels the pods whose Serve proxy is healthy `ray.io/serve: "true"` (what `<name>-serve-svc` selects).
RAY_SERVE_LABEL = "ray.io/serve"
# Discovery reads pods and nothing else: get/list/watch on pods, in one namespace (no ClusterRole).
DISCOVERY_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


def model_router_labels(route: Route) -> dict[str, str]:
    return {**MODEL_ROUTER_SELECTOR, ROUTE_LABEL: route.name}


def replica_selector(model: ModelPlan) -> dict[str, str]:
    """The labels of a model's serving pods: the vLLM Deployment's pod labels (components/model_server.py), or the
    Ray pods whose Serve proxy KubeRay marks healthy."""
    if model.server == "vllm":
        return dict(vllm_labels(model))
    return {MODEL_LABEL: model.name, RAY_SERVE_LABEL: "true"}


def _install_and_run(args: list[str]) -> list[str]:
    """pip installs the pinned wheel, then execs vllm-router with `args` (PID 1 gets SIGTERM)."""
    install = (f"pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore "
               f"vllm-router=={versions.VLLM_ROUTER_VERSION}")
    return ["sh", "-c", f"{install} && exec vllm-router {shlex.join(args)}"]


def model_router_args(route: Route, model: ModelPlan) -> list[str]:
    """A model's router: regular mode, the model's policy (cache_aware's load bound from the plan, plan/routing.py), its
    replicas discovered by label in its namespace; or, for a model that scales to zero, one static worker, the KEDA
    interceptor under the model's host, whose probe route answers the router's health checks without waking it
    (components/scale_to_zero.py)."""
    if model.scales_to_zero:
        workers = ["--worker-urls", scale_to_zero.worker_url(model)]
    else:
        selector = [f"{k}={v}" for k, v in sorted(replica_selector(model).items())]
        workers = ["--service-discovery", "--selector", *selector, "--service-discovery-namespace", route.namespace,
                   "--service-discovery-port", str(SERVE_PORT)]
    return ["--host", "0.0.0.0", "--port", str(ROUTER_PORT), *route.policy_args, *workers,
            "--prometheus-host", "0.0.0.0", "--prometheus-port", str(METRICS_PORT),
            "--request-timeout-secs", "1800", "--log-level", "info"]


def endpoint_router_args() -> list[str]:
    """The endpoint's router: multi-model mode, the per-model routers discovered in this namespace."""
    selector = [f"{k}={v}" for k, v in sorted(MODEL_ROUTER_SELECTOR.items())]
    return ["--enable-igw", "--host", "127.0.0.1", "--port", str(IGW_PORT), "--policy", "round_robin",
            "--service-discovery", "--selector", *selector, "--service-discovery-namespace", NAMESPACE,
            "--service-discovery-port", str(ROUTER_PORT),
            "--prometheus-host", "0.0.0.0", "--prometheus-port", str(METRICS_PORT),
            "--request-timeout-secs", "1800", "--log-level", "info"]


def models_document(plan: RouterPlan) -> dict[str, Any]:
    """GET /v1/models as vLLM answers it (OpenAI's list), for every model of the stack."""
    return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "llm-eks", "root": m}
                                       for m in plan.models]}


def nginx_conf(plan: RouterPlan) -> str:
    """nginx in the endpoint's pod: /v1/models from the plan, the rest to the router, streamed both ways."""
    models = json.dumps(models_document(plan), separators=(",", ":"))
    if "'" in models:
        raise ValueError(f"a model id holds a quote: {models}")
    return f"""worker_processes 1;
pid /tmp/nginx.pid;
error_log /dev/stderr warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path /tmp/client_body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
  server {{
    listen {ENDPOINT_PORT};
    client_max_body_size 64m;
    location = /v1/models {{
      default_type application/json;
      return 200 '{models}';
    }}
    location = /healthz {{
      return 200 'ok';
    }}
    location / {{
      proxy_pass http://127.0.0.1:{IGW_PORT};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 1800s;
      proxy_send_timeout 1800s;
    }}
  }}
}}
"""


def _router_container(args: list[str], port: int, probe_port: str | int, probe_path: str) -> dict[str, Any]:
    probe = {"httpGet": {"path": probe_path, "port": probe_port}, "periodSeconds": 5, "timeoutSeconds": 3}
    return {
        "name": "router",
        "image": versions.ROUTER_PYTHON_IMAGE,
        "command": _install_and_run(args),
        "ports": [{"name": "router", "containerPort": port}, {"name": "metrics", "containerPort": METRICS_PORT}],
        "startupProbe": {**probe, "failureThreshold": 120},  # pip install first
        "readinessProbe": {**probe, "failureThreshold": 3},
        "resources": RESOURCES,
        "securityContext": {"allowPrivilegeEscalation": False},
    }


def model_router_deployment(route: Route, model: ModelPlan) -> dict[str, Any]:
    """One replica: cache_aware keeps its prefix tree in memory, and two routers would each hold half of it."""
    labels = model_router_labels(route)
    container = _router_container(model_router_args(route, model), ROUTER_PORT, "router", "/readiness")
    # Liveness on /health (the process answers), readiness on /readiness (a healthy replica exists).
    container["livenessProbe"] = {"httpGet": {"path": "/health", "port": "router"}, "periodSeconds": 10,
                                  "failureThreshold": 6}
    # A model that scales to zero: its router is ready with no replica (the interceptor's probe route answers).
    metadata: dict[str, Any] = {"name": route.router, "namespace": NAMESPACE, "labels": labels}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                **system_placement(),
                "serviceAccountName": route.router,
                "containers": [container],
            }},
        },
    }


def endpoint_deployment() -> dict[str, Any]:
    router = _router_container(endpoint_router_args(), IGW_PORT, METRICS_PORT, "/metrics")
    router["ports"] = [{"name": "metrics", "containerPort": METRICS_PORT}]  # the router listens on loopback only
    nginx_probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5}
    nginx = {
        "name": "nginx",
        "image": versions.NGINX_IMAGE,
        "command": ["nginx", "-c", "/etc/llm-eks/nginx.conf", "-g", "daemon off;"],
        "ports": [{"name": "http", "containerPort": ENDPOINT_PORT}],
        "readinessProbe": nginx_probe,
        "livenessProbe": {**nginx_probe, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False},
        "volumeMounts": [{"name": "nginx", "mountPath": "/etc/llm-eks", "readOnly": True}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": ENDPOINT_SERVICE, "namespace": NAMESPACE, "labels": ENDPOINT_LABELS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": ENDPOINT_LABELS},
            "template": {"metadata": {"labels": ENDPOINT_LABELS}, "spec": {
                **system_placement(),
                "serviceAccountName": ENDPOINT_SERVICE,
                "containers": [nginx, router],
                "volumes": [{"name": "nginx", "configMap": {"name": f"{ENDPOINT_SERVICE}-nginx"}}],
            }},
        },
    }


def endpoint_service() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": ENDPOINT_SERVICE, "namespace": NAMESPACE, "labels": ENDPOINT_LABELS},
        "spec": {"type": "ClusterIP", "selector": ENDPOINT_LABELS,
                 "ports": [{"name": "http", "port": ENDPOINT_PORT, "targetPort": "http", "protocol": "TCP"}]},
    }


def discovery_rbac(account: str, namespace: str, role: str) -> list[dict[str, Any]]:
    """A Role in `namespace` that reads pods, bound to the ServiceAccount `account` of the router namespace."""
    meta = {"name": role, "namespace": namespace, "labels": {NAME_LABEL: "vllm-router"}}
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": DISCOVERY_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]},
    ]


def pod_monitor() -> dict[str, Any]:
    """Every router's exporter: per-replica requests and load, policy decisions, the cache-aware tree's hits."""
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
        "metadata": {"name": "vllm-router", "namespace": MONITORING_NAMESPACE,
                     "labels": {"app.kubernetes.io/part-of": "llm-eks"}},
        "spec": {
            "namespaceSelector": {"matchNames": [NAMESPACE]},
            "selector": {"matchLabels": {NAME_LABEL: "vllm-router"}},
            "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s"}],
        },
    }


def dashboard_config_map(plan: RouterPlan) -> dict[str, Any]:
    board = router_dashboard.dashboard([r.namespace for r in plan.routes if r.server == "vllm"])
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dashboard-routing", "namespace": MONITORING_NAMESPACE,
                     "labels": {"grafana_dashboard": "1"}},
        "data": {"routing.json": json.dumps(board, indent=1, sort_keys=True)},
    }


def namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}


def endpoint_objects(plan: RouterPlan) -> list[dict[str, Any]]:
    """The endpoint: its ServiceAccount and discovery Role, nginx's config, the Deployment and the Service."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ENDPOINT_SERVICE, "namespace": NAMESPACE}},
        *discovery_rbac(ENDPOINT_SERVICE, NAMESPACE, f"{ENDPOINT_SERVICE}-discovery"),
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": f"{ENDPOINT_SERVICE}-nginx", "namespace": NAMESPACE},
         "data": {"nginx.conf": nginx_conf(plan)}},
        endpoint_deployment(), endpoint_service(),
    ]


def route_objects(route: Route, model: ModelPlan) -> list[dict[str, Any]]:
    """A model's router: its ServiceAccount, the Role that lets it read pods in the model's namespace, the
    Deployment (last: it starts watching at once)."""
    rbac = [] if model.scales_to_zero else discovery_rbac(route.router, route.namespace, f"{NAMESPACE}-discovery")
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": route.router, "namespace": NAMESPACE}},
        *rbac,  # a static worker (scale to zero) reads no pods
        model_router_deployment(route, model),
    ]


def manifests(plan: RouterPlan, models: list[ModelPlan]) -> list[dict[str, Any]]:
    """Every object of the endpoint and the model routers (the PodMonitor and dashboard are the monitoring ones)."""
    by_name = {m.name: m for m in models}
    out = [namespace(), *endpoint_objects(plan)]
    for route in plan.routes:
        out += route_objects(route, by_name[route.name])
    return out


@dataclass
class RouterArgs:
    plan: RouterPlan
    models: list[ModelPlan]
    provider: k8s.Provider
    servers: dict[str, pulumi.Resource]  # model name -> its server component (its namespace exists after it)
    monitoring: pulumi.Resource  # the monitoring release: the PodMonitor CRD
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class Router(pulumi.ComponentResource):
    """The endpoint, one router per model, their RBAC, the PodMonitor and the routing dashboard. `url` is the
    stack's OpenAI base URL."""

    def __init__(self, name: str, args: RouterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:serving:Router", name, None, opts)
        k8s_opts = dict(parent=self, provider=args.provider)

        def create(obj: dict[str, Any], deps: list[pulumi.Resource]) -> pulumi.Resource:
            return _resource(name, obj, pulumi.ResourceOptions(**k8s_opts, depends_on=deps))

        ns = create(namespace(), list(args.depends_on))
        in_ns = [ns, *args.depends_on]
        before: list[pulumi.Resource] = []
        for obj in endpoint_objects(args.plan):
            before.append(create(obj, in_ns + (before if obj["kind"] == "Deployment" else [])))
        by_name = {m.name: m for m in args.models}
        for route in args.plan.routes:
            server = args.servers[route.name]  # creates the model's namespace
            made: list[pulumi.Resource] = []
            for obj in route_objects(route, by_name[route.name]):
                deps = [*in_ns, server] + (made if obj["kind"] == "Deployment" else [])
                made.append(create(obj, deps))
        after_crds = pulumi.ResourceOptions(**k8s_opts, depends_on=[args.monitoring])
        monitor = pod_monitor()
        k8s.apiextensions.CustomResource(f"{name}-podmonitor", api_version=monitor["apiVersion"],
                                         kind=monitor["kind"], metadata=monitor["metadata"], spec=monitor["spec"],
                                         opts=after_crds)
        cm = dashboard_config_map(args.plan)
        k8s.core.v1.ConfigMap(f"{name}-dashboard", metadata=cm["metadata"], data=cm["data"], opts=after_crds)
        self.url = args.plan.openai_base_url
        self.register_outputs({"url": self.url})


def _resource(name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.Resource:
    """The typed Kubernetes resource for one manifest, named `<component>-<kind>-<namespace>-<name>`."""
    meta = obj["metadata"]
    rname = f"{name}-{obj['kind'].lower()}-{meta.get('namespace', 'cluster')}-{meta['name']}"
    kind = obj["kind"]
    if kind == "Namespace":
        return k8s.core.v1.Namespace(rname, metadata=meta, opts=opts)
    if kind == "ServiceAccount":
        return k8s.core.v1.ServiceAccount(rname, metadata=meta, opts=opts)
    if kind == "ConfigMap":
        return k8s.core.v1.ConfigMap(rname, metadata=meta, data=obj["data"], opts=opts)
    if kind == "Service":
        return k8s.core.v1.Service(rname, metadata=meta, spec=obj["spec"], opts=opts)
    if kind == "Deployment":
        return k8s.apps.v1.Deployment(rname, metadata=meta, spec=obj["spec"], opts=opts)
    if kind == "Role":
        return k8s.rbac.v1.Role(rname, metadata=meta, rules=obj["rules"], opts=opts)
    if kind == "RoleBinding":
        return k8s.rbac.v1.RoleBinding(rname, metadata=meta, role_ref=obj["roleRef"], subjects=obj["subjects"],
                                       opts=opts)
    raise ValueError(f"no resource for kind {kind}")
