"""Scale to zero (components/scale_to_zero.py) in stack qwen-g6-scale0, held against upstream sources:

- the KEDA HTTP add-on chart 0.15.0's Chart.yaml and values.yaml (../shared/charts): the Service names the chart
  gives its interceptor and scaler ("<Chart.Name>-<service>", templates/interceptor/service-proxy.yaml and
  scaler/service.yaml @ kedacore/charts c4b92e9e) and their ports;
- the add-on's CRDs (../shared/crds): the CEL rules that the schema validation of test_manifests.py skips, evaluated
  here for the has()-only rules the InterceptorRoute and HTTPScaledObject CRDs carry;
- the interceptor's routing (http-add-on v0.15.0 pkg/routing/key.go and tablememory.go): a request's key is
  "<host without port>/<path trimmed of '/'>/", the longest stored prefix wins; reimplemented below from that Go code;
- vllm-router 0.1.17's defaults for its worker health check (vllm_router/router_args.py in the wheel the pods
  install: health_check_endpoint "/health"), and the paths its code calls on a worker (/health at start and
  periodically, /v1/models from the endpoint when it discovers a router).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from components import scale_to_zero as s0
from config.loader import ConfigError
from plan.models import plan_models
from preview import render
from tests.program.conftest import recorded
from tests.validation import SHARED, require_shared

STACK = "qwen-g6-scale0"
ROUTER_ARGS = Path(__file__).resolve().parents[2] / ".engines" / "router"


def _stack():
    config, plans, run = recorded(STACK)
    return config, plans, run, render.manifests(run)


def _find(manifests, kind, name):
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


def _chart():
    require_shared()
    chart = yaml.safe_load((SHARED / "charts" / "keda-add-ons-http-0.15.0.Chart.yaml").read_text())
    values = yaml.safe_load((SHARED / "charts" / "keda-add-ons-http-0.15.0.values.yaml").read_text())
    return chart, values


def _route_key(host: str, path: str) -> str:
    """pkg/routing/key.go NewKey: hostname (port stripped) + '/' + path trimmed of '/' + '/' if the path is not empty."""
    path = path.strip("/")
    return f"{host}/{path}/" if path else f"{host}/"


def _route(routes, url: str) -> str | None:
    """tablememory.go Route, exact host then catch-all: the route whose key is the longest prefix of the request's."""
    parts = urlsplit(url)
    key = _route_key(parts.hostname or "", parts.path)
    best = None
    for r in routes:
        for rule in r["spec"]["rules"]:
            for host in rule.get("hosts") or ["*"]:
                for p in rule.get("paths") or [{"value": ""}]:
                    stored = _route_key(host.split(":")[0], p["value"])
                    if key.startswith(stored) and (best is None or len(stored) > len(best[0])):
                        best = (stored, r["metadata"]["name"])
    return best[1] if best else None


def _cel_has_rules(schema: dict, obj, where: str = "spec"):
    """Every x-kubernetes-validations rule made of has(self.x), !, !=, && and ||, evaluated on `obj`; other rules are
    reported as not evaluated (none in these CRDs' paths we use)."""
    if not isinstance(obj, dict):
        if isinstance(obj, list) and "items" in schema:
            for i, item in enumerate(obj):
                yield from _cel_has_rules(schema["items"], item, f"{where}[{i}]")
        return
    for v in schema.get("x-kubernetes-validations", []):
        expr = re.sub(r"has\(self\.(\w+)\)", lambda m: repr(m.group(1) in obj), v["rule"])
        expr = expr.replace("&&", " and ").replace("||", " or ").replace("!=", " __NE__ ").replace("!", " not ")
        expr = expr.replace("__NE__", "!=")
        assert re.fullmatch(r"[\sA-Za-z()!=]*", expr) and set(re.findall(r"\w+", expr)) <= {
            "True", "False", "and", "or", "not"}, f"{where}: rule not evaluated: {v['rule']}"
        if not eval(expr):  # noqa: S307 (only True/False/and/or/not/!= after the checks above)
            yield f"{where}: {v['message']}"
    for key, sub in (schema.get("properties") or {}).items():
        if key in obj:
            yield from _cel_has_rules(sub, obj[key], f"{where}.{key}")


def test_a_model_at_zero_is_reached_through_the_interceptor_by_its_host():
    chart, values = _chart()
    _, (model,), _, manifests = _stack()
    assert model.scales_to_zero and model.spec.replicas.min == 0
    wake = _find(manifests, "Service", f"{model.name}-wake")
    interceptor = f"{chart['name']}-{values['interceptor']['proxy']['service']}"
    assert wake["spec"] == {"type": "ExternalName", "externalName": f"{interceptor}.keda.svc.cluster.local",
                            "ports": [{"name": "http", "port": values["interceptor"]["proxy"]["port"],
                                       "protocol": "TCP"}]}
    router = _find(manifests, "Deployment", f"route-{model.name}")
    script = router["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    url = re.search(r"--worker-urls (\S+)", script).group(1)
    assert urlsplit(url).hostname == f"{model.name}-wake.{model.namespace}.svc.cluster.local"
    assert urlsplit(url).port == values["interceptor"]["proxy"]["port"]
    assert "--service-discovery" not in script and "--health-check-endpoint" not in script


def test_the_routers_calls_go_to_the_probe_route_and_traffic_to_the_serving_one():
    _, (model,), _, manifests = _stack()
    routes = [m for m in manifests if m["kind"] == "InterceptorRoute" and m["metadata"]["namespace"] == model.namespace]
    router_args = next(ROUTER_ARGS.glob("lib/python3*/site-packages/vllm_router/router_args.py"), None)
    if router_args is None:
        pytest.fail(f"no router virtualenv at {ROUTER_ARGS}: run `make router-venv` (make test does)")
    health = re.search(r'health_check_endpoint: str = "([^"]+)"', router_args.read_text()).group(1)
    worker = s0.worker_url(model)
    # health checks (start and periodic) and the endpoint's model lookup: never counted for scaling
    for call in (health, "/health", "/v1/models"):
        assert _route(routes, worker + call) == f"{model.name}-probe", call
    # requests, and what cache_aware would read: counted, held while the model wakes
    for call in ("/v1/chat/completions", "/v1/completions", "/v1/chat/completions/render", "/v1/embeddings"):
        assert _route(routes, worker + call) == model.name, call
    assert _route(routes, "http://other.example/v1/completions") is None  # another host: a 404, nothing wakes
    probe = _find(manifests, "InterceptorRoute", f"{model.name}-probe")["spec"]
    answer = probe["coldStart"]["placeholder"]["response"]
    assert answer["statusCode"] == 200 and yaml.safe_load(answer["body"])["data"][0]["id"] == model.spec.model


def test_the_scaled_object_wakes_on_the_serving_routes_requests_only():
    chart, values = _chart()
    _, (model,), _, manifests = _stack()
    so = _find(manifests, "ScaledObject", model.name)["spec"]
    assert so["minReplicaCount"] == 0 and so["maxReplicaCount"] == model.spec.replicas.max
    (http,) = [t for t in so["triggers"] if t["type"] == "external-push"]
    scaler = f"{chart['name']}-{values['scaler']['service']}.keda:{values['scaler']['grpcPort']}"
    assert http["metadata"] == {"scalerAddress": scaler, "interceptorRoute": model.name}
    readers = [t["metadata"].get("interceptorRoute") for m in manifests if m["kind"] == "ScaledObject"
               for t in m["spec"]["triggers"]]
    assert f"{model.name}-probe" not in readers
    assert so["cooldownPeriod"] > 0
    # the wait: the plan's cold-start budget; it must leave time to generate within the routers' 1800 s
    serve = _find(manifests, "InterceptorRoute", model.name)["spec"]
    assert serve["timeouts"]["readiness"] == f"{model.cold_start.total_s}s"
    assert model.cold_start.total_s < 1800 / 2
    pool = next(m for m in manifests if m["kind"] == "NodePool" and m["metadata"]["name"] == model.pool)
    assert pool["spec"]["disruption"]["consolidationPolicy"] == "WhenEmpty"  # Karpenter removes the empty node


def test_the_add_on_objects_meet_the_crds_cel_rules():
    require_shared()
    _, _, _, manifests = _stack()
    checked = 0
    for m in manifests:
        if m["apiVersion"].startswith("http.keda.sh/"):
            crd = yaml.safe_load((SHARED / "crds" / f"http.keda.sh_{m['kind'].lower()}s.yaml").read_text())
            version = next(v for v in crd["spec"]["versions"] if m["apiVersion"].endswith("/" + v["name"]))
            assert version["served"]
            schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
            assert list(_cel_has_rules(schema, m["spec"])) == [], m["metadata"]["name"]
            checked += 1
    assert checked == 2
    # the check can fail: both port and portName break the target's rule
    crd = yaml.safe_load((SHARED / "crds" / "http.keda.sh_interceptorroutes.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    broken = {"target": {"service": "x", "port": 1, "portName": "http"}, "scalingMetric": {}}
    assert len(list(_cel_has_rules(schema, broken))) == 2


def test_only_stacks_that_scale_to_zero_install_the_add_on():
    for stack in ("qwen-g6", "qwen-g6-prod", STACK):
        _, plans, run = recorded(stack)
        charts = {r["chart"] for r in render.helm_releases(run)}
        assert ("keda-add-ons-http" in charts) == any(p.scales_to_zero for p in plans), stack
        release = next((r for r in render.helm_releases(run) if r["chart"] == "keda-add-ons-http"), None)
        if release:
            assert release["namespace"] == "keda"


def test_cache_aware_at_zero_is_refused_naming_the_key():
    config, _, _ = recorded(STACK)
    model = config.models[0].model_copy(update={"routing": "cache_aware"})
    with pytest.raises(ConfigError, match=r"^llm-eks:models\[0\]\.routing: cache_aware needs replicas\.min >= 1"):
        plan_models(config.model_copy(update={"models": [model]}))


def test_the_chat_ui_waits_out_the_wake_up():
    """Open WebUI's reply timeout (AIOHTTP_CLIENT_TIMEOUT, read by open-webui backend/open_webui/env.py as whole
    seconds; unset means no limit): the 300 s a reply may take, plus the cold-start budget where the model sleeps."""
    for stack in ("qwen-g6", STACK):
        _, (model,), run = recorded(stack)
        values = next(r for r in render.helm_releases(run) if r["chart"] == "open-webui")["values"]
        env = {e["name"]: e["value"] for e in values["extraEnvVars"]}
        assert int(env["AIOHTTP_CLIENT_TIMEOUT"]) == 300 + (model.cold_start.total_s if stack == STACK else 0)


def test_plan_json_says_which_models_sleep_and_how_long_a_request_may_wait():
    from plan.stack import plan_stack

    for stack in ("qwen-g6", STACK):
        config, plans, run = recorded(stack)
        (m,) = render.plan_document(run, plans, plan_stack(config).cost)["models"]
        assert (m["scales_to_zero"], m["wake_s"]) == ((True, m["cold_start"]["total_s"]) if stack == STACK
                                                      else (False, 0))
