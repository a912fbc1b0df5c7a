"""Metrics and autoscaling (issue 8): the monitors, the ScaledObjects and the Helm values of
components/monitoring.py and components/autoscaling.py validate against the upstream CRDs and charts, and they
point at what the rest of the stack really creates (pod labels, port names, the Deployment, the Prometheus Service).
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from components import autoscaling, monitoring, ray_service, versions
from components.autoscaling import ScalingBehavior
from plan import scaling
from plan.scaling import ScalingThresholds
from components.model_server import deployment_spec, pod_spec
from config import load_stack_config
from plan.models import plan_models
from preview import render
from preview.harness import read_stack_config, run_stack, stack_file
from tests.validation import SHARED, require_shared, unknown_helm_values, validate_manifest

K8S = "1.35"
CHARTS = SHARED / "charts"
DCGM_TAG = "4.5.3-4.8.2"  # NVIDIA/dcgm-exporter tag whose deployment/values.yaml is chart 4.8.2's
DCGM_MIRROR = Path("/work/.mirror/NVIDIA+dcgm-exporter/repo")
# One stack of each kind: vLLM with room to scale, vLLM fixed, Ray Serve on Neuron with room to scale.
STACKS = ("qwen-g6-prod", "llama32-1b-g5", "llama2-13b-inf2")


@functools.cache
def plans_of(stack: str):
    raw, secrets = read_stack_config(stack_file(stack))
    return tuple(plan_models(load_stack_config(raw, set(secrets))))


def all_plans():
    return [p for s in STACKS for p in plans_of(s)]


def vllm_plans():
    return [p for p in all_plans() if p.server == "vllm"]


def scaled(model):
    return autoscaling.scaled_object(model, model.scaling, monitoring.prometheus_url())


def crd_errors(manifest):
    return validate_manifest(manifest, SHARED / "crds", K8S)


# --------------------------------------------------------------------------- CRDs


def test_every_monitor_validates_against_the_prometheus_operator_crds():
    require_shared()
    found = monitoring.monitors(all_plans())
    assert {m["kind"] for m in found} == {"PodMonitor", "ServiceMonitor"}
    for m in found:
        assert crd_errors(m) == [], m["metadata"]["name"]


def test_every_scaled_object_validates_against_the_keda_crd():
    require_shared()
    models = [p for p in all_plans() if autoscaling.keda_scaled(p)]
    assert [p.name for p in models] == ["qwen3-1-7b"]  # the 2-4 vLLM stack; fixed and Ray stacks get none
    for p in models:
        assert crd_errors(scaled(p)) == []


def test_a_misspelt_field_is_rejected_so_the_checks_can_fail():
    require_shared()
    so = scaled(vllm_plans()[0])
    so["spec"]["cooldownPeriods"] = 300
    assert any("cooldownPeriods" in e for e in crd_errors(so))
    pm = monitoring.vllm_pod_monitor(vllm_plans()[0])
    pm["spec"]["podMetricsEndpoints"][0]["portName"] = "http"
    assert any("portName" in e for e in crd_errors(pm))


def test_the_dashboard_config_map_is_a_valid_core_object():
    require_shared()
    for model in vllm_plans():
        assert validate_manifest(monitoring.dashboard_config_map(model), SHARED / "crds", K8S) == []


# --------------------------------------------------------------------------- Helm values


def dcgm_values_yaml(tmp_path: Path) -> Path:
    require_shared()
    return CHARTS / "dcgm-exporter-4.8.2.values.yaml"


def test_helm_values_are_known_to_the_upstream_charts(tmp_path):
    require_shared()
    kps = CHARTS / f"kube-prometheus-stack-{versions.KUBE_PROMETHEUS_STACK.version}.values.yaml"
    keda = CHARTS / f"keda-{versions.KEDA.version}.values.yaml"
    assert kps.exists() and keda.exists()  # the pinned versions are the ones whose values we check
    assert unknown_helm_values(monitoring.stack_values(), kps) == []
    assert unknown_helm_values(monitoring.stack_values(alertmanager=True), kps) == []
    assert unknown_helm_values(autoscaling.keda_values(), keda) == []
    assert unknown_helm_values(monitoring.dcgm_values(), dcgm_values_yaml(tmp_path)) == []
    assert unknown_helm_values({"prometheus": {"prometheusSpec": {"retentionSizes": "1GB"}}}, kps)  # can fail


def test_prometheus_selects_monitors_outside_its_release_and_runs_small():
    spec = monitoring.stack_values()["prometheus"]["prometheusSpec"]
    assert spec["podMonitorSelectorNilUsesHelmValues"] is False
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["storageSpec"]["volumeClaimTemplate"]["spec"]["storageClassName"] == "gp3-encrypted"
    assert spec["nodeSelector"] == {"llm-eks/pool": "system"}
    assert spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"  # no volume outlives the stack
    values = monitoring.stack_values()
    assert values["alertmanager"]["enabled"] is False
    assert values["grafana"]["nodeSelector"] == values["prometheusOperator"]["nodeSelector"] == {"llm-eks/pool": "system"}


def test_dcgm_runs_on_gpu_nodes_only_and_tolerates_their_taint():
    values = monitoring.dcgm_values()
    assert values["nodeSelector"] == {"llm-eks/accelerator": "nvidia"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in values["tolerations"]
    assert values["serviceMonitor"]["enabled"] is False  # ours replaces it (validated, created after the CRDs)


# --------------------------------------------------------------------------- contracts


def test_the_vllm_pod_monitor_selects_the_model_pods_on_a_named_port():
    for model in vllm_plans():
        pm = monitoring.vllm_pod_monitor(model)
        template = deployment_spec(model)["template"]
        selector = pm["spec"]["selector"]["matchLabels"]
        assert selector.items() <= template["metadata"]["labels"].items()
        assert pm["spec"]["namespaceSelector"]["matchNames"] == [model.name]  # ModelServer's namespace
        ports = {p["name"] for c in pod_spec(model)["containers"] for p in c.get("ports", [])}
        for endpoint in pm["spec"]["podMetricsEndpoints"]:
            assert endpoint["port"] in ports
            assert endpoint["path"] == "/metrics"


def test_the_ray_pod_monitor_selects_head_and_workers_on_kuberays_metrics_port():
    model = next(p for p in all_plans() if p.server == "rayserve")
    pm = monitoring.ray_pod_monitor(model)
    match = pm["spec"]["selector"]["matchLabels"]
    expr = pm["spec"]["selector"]["matchExpressions"][0]
    assert expr == {"key": "ray.io/node-type", "operator": "In", "values": ["head", "worker"]}
    spec = ray_service.ray_service_spec(model, "hash")["rayClusterConfig"]
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        assert match.items() <= group["template"]["metadata"]["labels"].items()
        # KubeRay 1.7 adds `metrics` (8080) unless the Ray container already names a port so.
        ports = {p["name"]: p["containerPort"] for p in group["template"]["spec"]["containers"][0].get("ports", [])}
        assert ports.get(monitoring.RAY_METRICS_PORT, 8080) == 8080
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_the_dcgm_service_monitor_selects_the_charts_service():
    sm = monitoring.dcgm_service_monitor()
    assert sm["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "dcgm-exporter", "app.kubernetes.io/instance": monitoring.DCGM_RELEASE,
        "app.kubernetes.io/component": "dcgm-exporter"}
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["endpoints"][0]["honorLabels"] is True  # the GPU's pod/namespace, not the exporter's
    if DCGM_MIRROR.is_dir():  # the chart's own templates, where a copy is at hand
        def show(path: str) -> str:
            return subprocess.run(["git", "-C", str(DCGM_MIRROR), "show", f"{DCGM_TAG}:deployment/{path}"],
                                  check=True, capture_output=True, text=True).stdout

        assert 'name: "metrics"' in show("templates/service.yaml")
        helpers = show("templates/_helpers.tpl")
        block = helpers[helpers.index('define "dcgm-exporter.selectorLabels"'):]
        assert {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"} <= set(
            re.findall(r"^(app\.kubernetes\.io/\w+):", block.split("{{- end -}}")[0], re.M))


def test_prometheus_service_name_follows_the_charts_fullname_helper():
    # kube-prometheus-stack templates/_helpers.tpl: release containing the chart name -> release; else
    # "<release>-kube-prometheus-stack"; truncated to 26 characters; then "-prometheus".
    assert monitoring.prometheus_service("kube-prometheus-stack") == "kube-prometheus-stack-prometheus"
    assert monitoring.prometheus_service("prometheus") == "prometheus-kube-prometheus-prometheus"
    assert monitoring.prometheus_service("kps") == "kps-kube-prometheus-stack-prometheus"
    assert monitoring.prometheus_url() == (
        "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090")
    assert monitoring.grafana_service() == "kube-prometheus-stack-grafana"


def test_the_scaled_object_targets_the_deployment_within_the_bounds():
    model = next(p for p in vllm_plans() if autoscaling.keda_scaled(p))
    so = scaled(model)
    spec = so["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": model.name}
    assert so["metadata"]["namespace"] == model.name
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (model.spec.replicas.min, model.spec.replicas.max)
    assert {t["name"] for t in spec["triggers"]} == {"requests-waiting", "kv-cache-usage", "requests-running"}
    for t in spec["triggers"]:
        assert t["type"] == "prometheus" and t["metricType"] == "AverageValue"
        assert t["metadata"]["serverAddress"] == monitoring.prometheus_url()
        assert f'namespace="{model.name}"' in t["metadata"]["query"]
        assert float(t["metadata"]["threshold"]) > 0
    queries = " ".join(t["metadata"]["query"] for t in spec["triggers"])
    assert {"vllm:num_requests_waiting", "vllm:kv_cache_usage_perc", "vllm:num_requests_running"} <= set(
        re.findall(r"vllm:\w+", queries))


def test_scale_down_is_slow_and_fits_the_pods_grace_period():
    model = next(p for p in vllm_plans() if autoscaling.keda_scaled(p))
    pod = pod_spec(model)
    assert pod["terminationGracePeriodSeconds"] == scaling.TERMINATION_GRACE_SECONDS
    assert pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(scaling.PRE_STOP_SECONDS)]
    timeout = scaling.shutdown_timeout_seconds()
    assert 0 < timeout < scaling.TERMINATION_GRACE_SECONDS - scaling.PRE_STOP_SECONDS
    behavior = scaled(model)["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]
    assert behavior["scaleUp"]["policies"][0]["value"] == 1


def test_thresholds_from_the_plan_are_sane_and_bad_ones_fail():
    for model in all_plans():
        t = model.scaling
        if model.spec.replicas.max == model.spec.replicas.min:
            assert t is None  # fixed replicas: nothing to scale
            continue
        assert 0.5 <= t.kv_cache_usage <= 0.85
        assert t.waiting_per_replica >= 1
        assert t.running_per_replica == max(1, model.plan.concurrency_per_replica)
    with pytest.raises(ValueError):
        ScalingThresholds(waiting_per_replica=1, kv_cache_usage=80)  # a percentage, not a fraction
    with pytest.raises(ValueError):
        ScalingThresholds(waiting_per_replica=0, kv_cache_usage=0.8)
    with pytest.raises(ValueError):
        autoscaling.scaled_object(next(p for p in all_plans() if p.server == "rayserve"),
                                  ScalingThresholds(1, 0.8), monitoring.prometheus_url())


def test_the_ray_serve_autoscaling_config_uses_the_same_bounds_and_ray_serves_keys():
    model = next(p for p in all_plans() if p.server == "rayserve" and p.spec.replicas.max > p.spec.replicas.min)
    t = model.scaling
    cfg = autoscaling.ray_serve_autoscaling_config(model, t)
    # ray.serve.config.AutoscalingConfig (Ray 2.53) fields
    ray_fields = {"min_replicas", "initial_replicas", "max_replicas", "target_ongoing_requests", "metrics_interval_s",
                  "look_back_period_s", "smoothing_factor", "upscale_smoothing_factor", "downscale_smoothing_factor",
                  "upscaling_factor", "downscaling_factor", "downscale_delay_s", "downscale_to_zero_delay_s",
                  "upscale_delay_s", "aggregation_function", "policy"}
    assert set(cfg) <= ray_fields
    served = yaml.safe_load(ray_service.serve_config(model))["applications"][0]["deployments"][0]["autoscaling_config"]
    assert (cfg["min_replicas"], cfg["max_replicas"]) == (served["min_replicas"], served["max_replicas"])
    assert cfg["downscale_delay_s"] == ScalingBehavior().scale_down_stabilization_seconds


def test_the_dashboard_carries_the_instance_price_per_model():
    boards = {}
    for model in vllm_plans():
        cm = monitoring.dashboard_config_map(model)
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"  # the chart's sidecar label
        (board,) = [json.loads(text) for text in cm["data"].values()]
        variables = {v["name"]: v for v in board["templating"]["list"]}
        hourly = model.plan.fleet_hourly_usd or model.plan.hourly_usd
        assert float(variables["hourly_usd"]["query"]) == pytest.approx(hourly, abs=1e-4)
        assert variables["namespace"]["current"]["value"] == model.namespace
        assert model.plan.instance_type in board["title"]
        assert len(board["uid"]) <= 40
        boards[board["uid"]] = board
    assert len(boards) == len(vllm_plans())  # one uid per model
    sidecar = monitoring.stack_values()["grafana"]["sidecar"]["dashboards"]
    assert (sidecar["label"], sidecar["labelValue"]) == ("grafana_dashboard", "1")


# --------------------------------------------------------------------------- a mock run


PROGRAM = textwrap.dedent('''
    import pulumi
    import pulumi_kubernetes as k8s

    from components.autoscaling import Autoscaling, AutoscalingArgs
    from components.model_server import ModelServer, ModelServerArgs
    from components.monitoring import Monitoring, MonitoringArgs, prometheus_url
    from components.weights_cache import WeightsAccess, WeightsBucket
    from tests.program.test_operate import all_plans

    plans = all_plans()
    provider = k8s.Provider("k8s", kubeconfig="{}")
    system_nodes = pulumi.ComponentResource("test:index:SystemNodes", "system-nodes")
    pool = pulumi.ComponentResource("test:index:NodePool", "pool")
    weights = WeightsAccess(WeightsBucket("weights", {}), "operate-test")
    servers = {p.name: ModelServer(p.name, ModelServerArgs(model=p, hf_token=pulumi.Output.secret("hf"),
                                                            provider=provider, node_pool=pool, weights=weights))
               for p in plans if p.server == "vllm"}
    monitoring = Monitoring("monitoring", MonitoringArgs(models=plans, provider=provider, depends_on=[system_nodes]))
    Autoscaling("autoscaling", AutoscalingArgs(
        models=plans, provider=provider, prometheus_url=prometheus_url(), servers=servers,
        depends_on=[system_nodes, monitoring.release]))
''')


@functools.cache
def mock_run(tmp: Path):
    program = tmp / "operate_program.py"
    program.write_text(PROGRAM)
    return run_stack("operate-test", {"aws:region": "us-east-1"}, [], program=program)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return mock_run(tmp_path_factory.mktemp("operate"))


def test_mock_run_registers_the_components_releases_and_objects(run):
    types = {r.type for r in run.resources}
    assert {"llm-eks:observability:Monitoring", "llm-eks:autoscaling:Autoscaling"} <= types
    releases = {r["release"]: r for r in render.helm_releases(run)}
    assert {"kube-prometheus-stack", "dcgm-exporter", "keda"} <= set(releases)
    assert releases["kube-prometheus-stack"]["version"] == versions.KUBE_PROMETHEUS_STACK.version
    assert releases["keda"]["version"] == versions.KEDA.version
    kinds = [m["kind"] for m in render.manifests(run)]
    assert kinds.count("ScaledObject") == 1 and kinds.count("PodMonitor") == 3 and kinds.count("ServiceMonitor") == 1


def test_mock_run_manifests_validate(run):
    require_shared()
    failures = {}
    for m in render.manifests(run):
        if m["kind"] in ("ScaledObject", "PodMonitor", "ServiceMonitor", "Namespace", "ConfigMap"):
            if errors := validate_manifest(m, SHARED / "crds", K8S):
                failures[f"{m['kind']}/{m['metadata']['name']}"] = errors
    assert not failures, failures


def test_mock_run_scaled_object_targets_the_real_deployment_and_waits_for_keda(run):
    deployments = {(m["metadata"]["namespace"], m["metadata"]["name"]): m for m in render.manifests(run)
                   if m["kind"] == "Deployment"}
    so_res = next(r for r in run.resources if r.type == "kubernetes:keda.sh/v1alpha1:ScaledObject")
    so = render.manifest(so_res)
    target = (so["metadata"]["namespace"], so["spec"]["scaleTargetRef"]["name"])
    assert target in deployments
    keda = next(r for r in run.resources if r.type == render.HELM and r.inputs.get("name") == "keda")
    deployment = next(r for r in run.resources if r.type == "kubernetes:apps/v1:Deployment"
                      and r.inputs["metadata"]["name"] == target[1])
    assert run.depends_on(so_res, keda) and run.depends_on(so_res, deployment)


def test_mock_run_monitors_wait_for_the_prometheus_operator_crds(run):
    stack = next(r for r in run.resources if r.type == render.HELM and r.inputs.get("name") == monitoring.RELEASE)
    for r in run.resources:
        if r.type.startswith("kubernetes:monitoring.coreos.com/"):
            assert run.depends_on(r, stack), r.name


def test_stack_file_thresholds_override_the_plans():
    raw, secrets = read_stack_config(stack_file("qwen-g6-prod"))
    models = json.loads(raw["llm-eks:models"])
    models[0]["autoscaling"] = {"kvCacheUsage": 0.7, "waitingPerReplica": 3}
    raw["llm-eks:models"] = json.dumps(models)
    model = plan_models(load_stack_config(raw, set(secrets)))[0]
    assert (model.scaling.kv_cache_usage, model.scaling.waiting_per_replica) == (0.7, 3)
    assert model.scaling.running_per_replica == plans_of("qwen-g6-prod")[0].scaling.running_per_replica
    models[0]["autoscaling"] = {"kvCacheUsage": 80}  # a percentage, not a fraction
    raw["llm-eks:models"] = json.dumps(models)
    with pytest.raises(Exception, match=r"models\[0\]\.autoscaling\.kvCacheUsage"):
        load_stack_config(raw, set(secrets))
