"""The one OpenAI endpoint in every stack (components/router.py): its manifests as rendered, the router arguments as
the pinned vllm-router's own parser reads them, discovery RBAC, and the chat UI's wiring.

Independent sources: vllm-router 0.1.17's argument parser (vllm_router.launch_router.parse_router_args, run in
.engines/router, the wheel the pods install), KubeRay 1.7's serve label (ray-operator utils/constant.go:
RayClusterServingServiceLabelKey = "ray.io/serve", set "true" on the head pod when its Serve proxy is healthy), the
rendered pod templates of the model servers, and nginx's own config check (`nginx -t`, where nginx is installed).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from components import router as r
from components import versions
from config.names import ROUTER_NAMESPACE
from plan.routing import openai_base_url
from plan.stack import plan_stack
from preview import render
from tests.program.conftest import recorded

REPO = Path(__file__).resolve().parents[2]
ROUTER_PYTHON = REPO / ".engines" / "router" / "bin" / "python"
PARSE = ("import json, sys; from vllm_router.launch_router import parse_router_args; "
         "out = []\n"
         "for argv in json.load(sys.stdin):\n"
         "    a = parse_router_args(argv)\n"
         "    out.append({k: getattr(a, k) for k in ('policy', 'enable_igw', 'service_discovery', 'selector', "
         "'service_discovery_namespace', 'service_discovery_port', 'host', 'port', 'prometheus_port', "
         "'prometheus_host', 'worker_urls', 'balance_abs_threshold', 'balance_rel_threshold', 'cache_threshold')})\n"
         "json.dump(out, sys.stdout)")


def _objects(manifests, kind, namespace=None):
    return [m for m in manifests if m["kind"] == kind and (namespace is None or m["metadata"].get("namespace") == namespace)]


def _router_argv(deployment) -> list[str]:
    """The arguments the router container execs vllm-router with (after the pinned pip install)."""
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "router")
    script = container["command"][-1]
    install, run = script.split(" && exec ")
    assert install.endswith(f"vllm-router=={versions.VLLM_ROUTER_VERSION}")
    argv = shlex.split(run)
    assert argv[0] == "vllm-router"
    return argv[1:]


def _parsed(argvs: list[list[str]]) -> list[dict]:
    if not ROUTER_PYTHON.exists():
        message = f"no router virtualenv at {ROUTER_PYTHON.parent.parent}: run `make router-venv` (make test does)"
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(message + "; CI runs every router test")
        pytest.skip(message)
    proc = subprocess.run([str(ROUTER_PYTHON), "-c", PARSE], input=json.dumps(argvs), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _served_pod_labels(manifests, plan) -> dict[str, str]:
    """The labels of the pods that serve a model, as rendered: the vLLM Deployment's template, or the RayService
    head's (to which KubeRay adds ray.io/serve once its Serve proxy is healthy)."""
    if plan.server == "vllm":
        d = next(m for m in _objects(manifests, "Deployment", plan.namespace) if m["metadata"]["name"] == plan.name)
        return d["spec"]["template"]["metadata"]["labels"]
    rs = next(m for m in _objects(manifests, "RayService", plan.namespace))
    head = rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["metadata"]["labels"]
    return {**head, "ray.io/serve": "true"}


def test_every_model_has_a_router_that_discovers_its_pods_with_its_policy(config, plans, manifests):
    deployments = {m["metadata"]["name"]: m for m in _objects(manifests, "Deployment", ROUTER_NAMESPACE)}
    assert set(deployments) == {"openai", *(f"route-{p.name}" for p in plans)}
    names = [f"route-{p.name}" for p in plans]
    parsed = dict(zip(names, _parsed([_router_argv(deployments[n]) for n in names])))
    for p, spec in zip(plans, config.models):
        args = parsed[f"route-{p.name}"]
        assert args["policy"] == (spec.routing or ("cache_aware" if p.server == "vllm" and spec.replicas.max > 1
                                                   and spec.replicas.min > 0 else "round_robin"))
        assert not args["enable_igw"]
        if p.scales_to_zero:  # one static worker, the KEDA interceptor (tests/program/test_scale_to_zero.py)
            assert not args["service_discovery"] and len(args["worker_urls"]) == 1
        else:
            assert args["service_discovery"] and args["worker_urls"] == []
            assert args["service_discovery_namespace"] == p.namespace
            assert args["service_discovery_port"] == 8000  # vLLM's and Ray Serve's HTTP port
            pod_labels = _served_pod_labels(manifests, p)
            assert args["selector"] and args["selector"].items() <= pod_labels.items(), (p.name, args["selector"])
        assert args["host"] == "0.0.0.0" and args["prometheus_host"] == "0.0.0.0"
        container = deployments[f"route-{p.name}"]["spec"]["template"]["spec"]["containers"][0]
        assert {"containerPort": args["port"], "name": "router"} in container["ports"]
        assert {"containerPort": args["prometheus_port"], "name": "metrics"} in container["ports"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readiness"  # ready only with a healthy replica
        if args["policy"] == "cache_aware":  # rebalances once the prefix tree would load a replica past its plan
            assert args["balance_abs_threshold"] == p.plan.concurrency_per_replica - 1, p.name
        if p.server == "vllm":  # cache_aware reads prompt tokens from /v1/chat/completions/render (--enable-scale-out)
            server = next(m for m in _objects(manifests, "Deployment", p.namespace) if m["metadata"]["name"] == p.name)
            server_args = server["spec"]["template"]["spec"]["containers"][0]["args"]
            assert ("--enable-scale-out" in server_args) == (args["policy"] == "cache_aware"), p.name


def test_the_endpoint_routes_by_model_to_the_model_routers(plans, manifests):
    endpoint = next(m for m in _objects(manifests, "Deployment", ROUTER_NAMESPACE) if m["metadata"]["name"] == "openai")
    (args,) = _parsed([_router_argv(endpoint)])
    assert args["enable_igw"] and args["service_discovery"]
    assert args["service_discovery_namespace"] == ROUTER_NAMESPACE and args["host"] == "127.0.0.1"
    routers = [m for m in _objects(manifests, "Deployment", ROUTER_NAMESPACE) if m["metadata"]["name"] != "openai"]
    for d in routers:  # every model router is discovered, at the port it listens on
        assert args["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        assert {"containerPort": args["service_discovery_port"], "name": "router"} in \
            d["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert not args["selector"].items() <= endpoint["spec"]["template"]["metadata"]["labels"].items()
    # nginx passes everything but /v1/models to the router on loopback, and answers /v1/models for every model
    conf = next(m for m in _objects(manifests, "ConfigMap", ROUTER_NAMESPACE))["data"]["nginx.conf"]
    assert f"proxy_pass http://127.0.0.1:{args['port']};" in conf and "proxy_buffering off;" in conf
    listed = json.loads(re.search(r"location = /v1/models \{[^']*'([^']*)'", conf).group(1))
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == [p.spec.model for p in plans]
    service = next(m for m in _objects(manifests, "Service", ROUTER_NAMESPACE))
    assert service["spec"]["selector"].items() <= endpoint["spec"]["template"]["metadata"]["labels"].items()
    nginx = next(c for c in endpoint["spec"]["template"]["spec"]["containers"] if c["name"] == "nginx")
    assert service["spec"]["ports"][0]["targetPort"] == "http" and nginx["ports"][0]["name"] == "http"
    assert openai_base_url() == (f"http://{service['metadata']['name']}.{ROUTER_NAMESPACE}.svc.cluster.local:"
                                 f"{service['spec']['ports'][0]['port']}/v1")


def test_discovery_reads_pods_in_one_namespace_each_and_nothing_else(plans, manifests):
    assert not [m for m in manifests if m["kind"] in ("ClusterRole", "ClusterRoleBinding")
                and "router" in m["metadata"]["name"]]
    bindings = _objects(manifests, "RoleBinding")
    routers = _objects(manifests, "Deployment", ROUTER_NAMESPACE)
    for d in routers:
        account = d["spec"]["template"]["spec"]["serviceAccountName"]
        argv = _router_argv(d)
        mine = [b for b in bindings if b["subjects"] == [{"kind": "ServiceAccount", "name": account,
                                                          "namespace": ROUTER_NAMESPACE}]]
        if "--service-discovery" not in argv:  # a static worker (scale to zero) is given no Role at all
            assert "--worker-urls" in argv and mine == []
            continue
        watched = argv[argv.index("--service-discovery-namespace") + 1]
        assert [b["metadata"]["namespace"] for b in mine] == [watched]
        role = next(m for m in _objects(manifests, "Role", watched)
                    if m["metadata"]["name"] == mine[0]["roleRef"]["name"])
        assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]


def test_chat_ui_and_exports_use_the_one_endpoint(config, plans, run):
    assert run.exports["openai_base_url"] == openai_base_url()
    if config.chat_ui.kind == "open-webui":
        values = next(x for x in render.helm_releases(run) if x["release"] == "open-webui")["values"]
        assert values["openaiBaseApiUrls"] == [openai_base_url()]
    elif config.chat_ui.kind == "gradio":
        gradio = next(m for m in render.manifests(run) if m["metadata"]["name"] == "gradio-chat"
                      and m["kind"] == "Deployment")
        env = {e["name"]: e["value"] for e in gradio["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["LLM_EKS_OPENAI_BASE_URL"] == openai_base_url()
        assert env["LLM_EKS_MODEL"] == plans[0].spec.model


def test_router_metrics_are_scraped(manifests):
    monitor = next(m for m in manifests if m["kind"] == "PodMonitor" and m["metadata"]["name"] == "vllm-router")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [ROUTER_NAMESPACE]}
    for d in _objects(manifests, "Deployment", ROUTER_NAMESPACE):
        assert monitor["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ports = [p for c in d["spec"]["template"]["spec"]["containers"] for p in c["ports"]]
        assert {"containerPort": r.METRICS_PORT, "name": "metrics"} in ports
    board = next(m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "dashboard-routing")
    assert board["metadata"]["namespace"] == "monitoring" and board["metadata"]["labels"] == {"grafana_dashboard": "1"}


def test_two_models_g6_serves_both_behind_one_endpoint_and_keda_still_scales_qwen():
    config, plans, run = recorded("two-models-g6")
    assert [p.spec.model for p in plans] == ["Qwen/Qwen3-1.7B", "meta-llama/Llama-3.2-1B"]
    qwen, llama = plans
    assert (qwen.spec.replicas.min, qwen.spec.replicas.max) == (1, 3) and qwen.routing_policy == "cache_aware"
    assert llama.routing_policy == "round_robin"
    # cache_aware reads prompt tokens from vLLM's /v1/chat/completions/render: only served with --enable-scale-out
    assert "--enable-scale-out" in qwen.server_args and "--enable-scale-out" not in llama.server_args
    # The stack file: qwen's 4 requests at once fit one replica (concurrency_per_replica 4), so its router follows the
    # prefix tree until the replica holding a prompt runs 3 more requests than the idlest, then picks the idlest;
    # the router's own default (parsed without the flags) would wait for 64 more.
    router = next(m for m in render.manifests(run) if m["kind"] == "Deployment"
                  and m["metadata"]["name"] == f"route-{qwen.name}")
    deployed, default = _parsed([_router_argv(router), ["--policy", "cache_aware"]])
    assert (deployed["balance_abs_threshold"], deployed["balance_rel_threshold"]) == (3, 1.5)
    assert (default["balance_abs_threshold"], default["balance_rel_threshold"]) == (64, 1.5)
    assert deployed["cache_threshold"] == default["cache_threshold"] == 0.3
    manifests = render.manifests(run)
    scaled = [m for m in manifests if m["kind"] == "ScaledObject"]
    # KEDA reads the vLLM pods' own metrics in the model's namespace: the router changes which pod gets a request,
    # not what the pods report
    assert [(m["metadata"]["namespace"], m["spec"]["scaleTargetRef"]["name"]) for m in scaled] == \
        [(qwen.namespace, qwen.name)]
    for trigger in scaled[0]["spec"]["triggers"]:
        assert f'namespace="{qwen.namespace}"' in trigger["metadata"]["query"]


def test_routing_is_a_stack_key_checked_against_the_routers_policies():
    from config import ConfigError, load_stack_config
    from preview.harness import read_stack_config, stack_file

    raw, secrets = read_stack_config(stack_file("two-models-g6"))
    models = json.loads(raw["llm-eks:models"])
    models[0]["routing"] = "power_of_two"
    config = load_stack_config({**raw, "llm-eks:models": json.dumps(models)}, set(secrets))
    assert plan_stack(config).router.routes[0].policy == "power_of_two"
    models[0]["routing"] = "prefix"
    with pytest.raises(ConfigError, match=r"models\[0\]\.routing"):
        load_stack_config({**raw, "llm-eks:models": json.dumps(models)}, set(secrets))
    raw, secrets = read_stack_config(stack_file("llama2-13b-inf2"))  # Ray Serve: no /render for cache_aware
    models = json.loads(raw["llm-eks:models"])
    models[0]["routing"] = "cache_aware"
    with pytest.raises(ConfigError, match=r"models\[0\]\.routing: cache_aware .* Ray Serve"):
        plan_stack(load_stack_config({**raw, "llm-eks:models": json.dumps(models)}, set(secrets)))


def test_nginx_accepts_the_endpoint_config(tmp_path):
    if shutil.which("nginx") is None:
        message = "nginx is not installed (apt-get install nginx-light; .ci/run does)"
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    for stack in ("two-models-g6", "llama3-8b-inf2"):
        conf = next(m for m in render.manifests(recorded(stack)[2]) if m["kind"] == "ConfigMap"
                    and m["metadata"]["name"] == "openai-nginx")["data"]["nginx.conf"]
        path = tmp_path / f"{stack}.conf"
        path.write_text(conf)
        proc = subprocess.run(["nginx", "-t", "-c", str(path)], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0 and "test is successful" in proc.stderr, proc.stderr


def test_the_routing_dashboard_queries_what_vllm_router_exports():
    """Every vllm_router_* series the dashboard queries, in a real vllm-router 0.1.17 /metrics (a cache_aware router
    after an A/B run, tests/program/data/). vLLM's own names are checked by tests/bench/test_metrics_live.py, which
    reads every vllm:* name the project's sources use off a live vLLM."""
    from components.dashboards import router as board

    capture = (Path(__file__).parent / "data" / "vllm-router-0.1.17-cache-aware.metrics.txt").read_text()
    exposed = {line.split("{")[0].split(" ")[0] for line in capture.splitlines() if line and not line.startswith("#")}
    exposed |= {n.rsplit("_", 1)[0] for n in exposed if n.endswith(("_bucket", "_sum", "_count"))}
    queried = {name for p in board.dashboard(["ns"])["panels"] for t in p["targets"]
               for name in re.findall(r"vllm_router_[a-z_]+", t["expr"])}
    assert queried == set(board.ROUTER_METRICS)
    assert queried <= exposed, queried - exposed
    assert 'outcome="prefix_hit"' in capture  # cache_aware matched prefixes: the engines rendered the tokens


def test_make_preview_shows_one_endpoint_for_both_models(tmp_path, capsys):
    from preview.__main__ import main

    assert main(["two-models-g6", "--out", str(tmp_path), "--quiet"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert (f"one OpenAI endpoint: {openai_base_url()} serves Qwen/Qwen3-1.7B (cache_aware), "
            "meta-llama/Llama-3.2-1B (round_robin)") in text
    plan = json.loads((tmp_path / "two-models-g6" / "plan.json").read_text())
    assert plan["exports"]["openai_base_url"] == openai_base_url()
