"""The contracts between components, held on what the program registers, stack by stack.

Pods of one component must land on nodes another component makes: every nodeSelector and required node affinity is
matched by the labels of some NodePool or node group, every toleration answers a taint, every tainted pool has pods
that tolerate it, the device plugins' DaemonSets (with the affinity their upstream charts set) can run on the nodes
that have the devices, and a rolling update's surge fits the NodePool's limit. Nothing here recomputes a value with
the code under test: labels and taints are read off the registered NodePools, node groups and Helm values, the
charts' own affinities off their upstream values.yaml, and the accelerators per instance from AWS's instance pages.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from config import load_stack_config
from config.names import ROUTER_NAMESPACE
from plan.stack import plan_stack
from preview import render
from preview.harness import read_stack_config, run_stack, stack_file
from tests.validation import SHARED, require_shared

from .test_neuron_path import pod_specs

NODEPOOL_LABEL = "karpenter.sh/nodepool"  # Karpenter's well-known label (karpenter.sh/v1 API)
# Accelerators per instance, from the AWS instance type pages (accelerated computing), not from sizing/data.
ACCELERATORS = {"g6.xlarge": 1, "g6.2xlarge": 1, "g5.2xlarge": 1, "g5.12xlarge": 4, "g6e.xlarge": 1,
                "g6e.2xlarge": 1, "g6e.12xlarge": 4, "g6.12xlarge": 4, "inf2.xlarge": 1, "inf2.8xlarge": 1,
                "inf2.24xlarge": 6, "inf2.48xlarge": 12}


@dataclass
class Node:
    """What a node of a pool or group offers to the scheduler."""

    source: str
    labels: dict[str, str]
    taints: list[dict[str, str]] = field(default_factory=list)
    instance_types: list[str] = field(default_factory=list)
    limits: dict[str, str] = field(default_factory=dict)


@dataclass
class Placement:
    """Where a pod asks to go."""

    source: str
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    affinity: dict[str, Any] = field(default_factory=dict)


def nodes(run, manifests) -> list[Node]:
    out = []
    for group in run.by_type("aws:eks/nodeGroup:NodeGroup"):
        out.append(Node(f"node group {group.name}", dict(group.plain_inputs().get("labels") or {})))
    for pool in (m for m in manifests if m["kind"] == "NodePool"):
        spec = pool["spec"]["template"]
        labels = {**(spec.get("metadata", {}).get("labels") or {}), NODEPOOL_LABEL: pool["metadata"]["name"]}
        types = []
        for req in spec["spec"]["requirements"]:
            if req["operator"] == "In" and len(req["values"]) == 1:
                labels[req["key"]] = req["values"][0]  # Karpenter labels nodes with single-valued requirements
            if req["key"] == "node.kubernetes.io/instance-type":
                types = req["values"]
        out.append(Node(f"NodePool {pool['metadata']['name']}", labels, spec["spec"].get("taints") or [], types,
                        pool["spec"].get("limits") or {}))
    return out


def _values_placements(source: str, values: Any, where: str = "") -> list[Placement]:
    """Every block of Helm values that places pods (has a nodeSelector), wherever it nests."""
    out = []
    if isinstance(values, dict):
        if values.get("nodeSelector"):
            out.append(Placement(f"{source}{where}", values["nodeSelector"], values.get("tolerations") or [],
                                 values.get("affinity") or {}))
        for key, value in values.items():
            out += _values_placements(source, value, f"{where}.{key}")
    return out


def placements(run, manifests) -> list[Placement]:
    out = []
    for m in manifests:
        for where, pod in pod_specs(m):
            out.append(Placement(f"{m['kind']} {m['metadata']['name']}{where}", pod.get("nodeSelector") or {},
                                 pod.get("tolerations") or [], pod.get("affinity") or {}))
    for release in render.helm_releases(run):
        out += _values_placements(f"release {release['release']}", release["values"])
    return out


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, str]) -> bool:
    """Kubernetes' matching rule (an empty key with Exists tolerates everything)."""
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("value") == taint.get("value"):
            return True
    return False


def affinity_allows(affinity: dict[str, Any], labels: dict[str, str]) -> bool:
    terms = (((affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {})
             .get("nodeSelectorTerms"))
    if not terms:
        return True

    def matches(expr):
        value = labels.get(expr["key"])
        if expr["operator"] == "In":
            return value in expr["values"]
        if expr["operator"] == "NotIn":
            return value not in expr["values"]
        if expr["operator"] == "Exists":
            return value is not None
        raise AssertionError(f"operator {expr['operator']} not modelled")

    return any(all(matches(e) for e in term.get("matchExpressions", [])) for term in terms)


def can_run(p: Placement, node: Node) -> bool:
    return (all(node.labels.get(k) == v for k, v in p.node_selector.items())
            and all(tolerates(p.tolerations, t) for t in node.taints)
            and affinity_allows(p.affinity, node.labels))


def test_every_pod_lands_on_some_node(run, manifests):
    offered = nodes(run, manifests)
    stranded = [p.source for p in placements(run, manifests) if not any(can_run(p, n) for n in offered)]
    assert not stranded, stranded


def test_every_tainted_pool_serves_pods_that_tolerate_it(run, manifests):
    pods = [p for p in placements(run, manifests) if p.node_selector]
    for node in nodes(run, manifests):
        if node.taints:
            assert any(can_run(p, node) for p in pods), f"{node.source}: no pod selects and tolerates it"


def test_accelerator_nodes_take_only_pods_that_need_them(run, manifests):
    """Accelerator pools are tainted NoSchedule, and only what uses the devices tolerates the taint: model servers
    (which request the device resource) and the device plugins' DaemonSets."""
    pods = placements(run, manifests)
    requests = {}
    for m in manifests:
        for where, pod in pod_specs(m):
            requests[f"{m['kind']} {m['metadata']['name']}{where}"] = {
                k for c in pod["containers"] for k in (c.get("resources", {}).get("requests") or {})}
    for node in nodes(run, manifests):
        devices = {k for k in node.limits if k in ("nvidia.com/gpu", "aws.amazon.com/neuron")}
        if not devices:
            continue
        assert any(t["effect"] == "NoSchedule" for t in node.taints), node.source
        for p in pods:
            if can_run(p, node) and p.source in requests:
                assert requests[p.source] & devices, f"{p.source} can land on {node.source} without using it"


def test_nodepool_selectors_name_one_pool_each(run, manifests):
    """A model's pods select exactly their own pool: a selector that matched two pools could land on another
    model's instance type."""
    offered = nodes(run, manifests)
    for p in placements(run, manifests):
        if NODEPOOL_LABEL in p.node_selector:
            assert sum(can_run(p, n) for n in offered) == 1, p.source


def _upstream_values(chart_file: str) -> dict[str, Any]:
    require_shared()
    return yaml.safe_load((SHARED / "charts" / chart_file).read_text())


def test_the_nvidia_device_plugin_runs_on_every_gpu_node(run, manifests):
    """The chart's DaemonSet keeps its upstream affinity (NFD labels or nvidia.com/gpu.present=true) unless we
    override it; with our nodeSelector and tolerations it must be schedulable on each GPU NodePool's nodes."""
    release = next((r for r in render.helm_releases(run) if r["chart"] == "nvidia-device-plugin"), None)
    gpu_pools = [n for n in nodes(run, manifests) if "nvidia.com/gpu" in n.limits]
    if not gpu_pools:
        assert release is None  # no GPU models, no plugin
        return
    upstream = _upstream_values("nvidia-device-plugin-0.18.2.values.yaml")
    values = release["values"]
    daemonset = Placement("nvidia-device-plugin", values.get("nodeSelector") or upstream.get("nodeSelector") or {},
                          values.get("tolerations", upstream["tolerations"]), values.get("affinity", upstream["affinity"]))
    for pool in gpu_pools:
        assert can_run(daemonset, pool), pool.source


def test_the_neuron_device_plugin_tolerates_every_neuron_node(run, manifests):
    release = next((r for r in render.helm_releases(run) if r["chart"].endswith("neuron-helm-chart")), None)
    neuron_pools = [n for n in nodes(run, manifests) if "aws.amazon.com/neuron" in n.limits]
    if not neuron_pools:
        assert release is None
        return
    upstream = _upstream_values("neuron-helm-chart-1.9.0.values.yaml")
    plugin = release["values"].get("devicePlugin") or {}
    daemonset = Placement("neuron-device-plugin", plugin.get("nodeSelector") or {},
                          plugin.get("tolerations", upstream["devicePlugin"]["tolerations"]))
    for pool in neuron_pools:
        assert can_run(daemonset, pool), pool.source
        assert all(t.startswith(("inf", "trn")) for t in pool.instance_types)  # the chart's Neuron instance list


def _surge(deployment: dict[str, Any], replicas: int) -> int:
    value = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    return math.ceil(replicas * int(value[:-1]) / 100) if isinstance(value, str) else value


@pytest.mark.parametrize("which", ["vllm"])
def test_a_rolling_update_fits_the_nodepool_limit(which, plans, run, manifests):
    """During an update, max replicas plus the surge run at once; the pool's accelerator limit must allow their
    nodes (each node holds `replicas_per_node` pods), and allow no more than one extra node."""
    pools = {n.labels[NODEPOOL_LABEL]: n for n in nodes(run, manifests) if NODEPOOL_LABEL in n.labels}
    deployments = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Deployment"}
    for p in plans:
        if p.server != which:
            continue
        d = deployments[p.name]
        pod = d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        pool = pools[d["spec"]["template"]["spec"]["nodeSelector"][NODEPOOL_LABEL]]
        per_node = ACCELERATORS[pool.instance_types[0]]
        per_pod = int(pod["nvidia.com/gpu"])
        pods = p.spec.replicas.max + _surge(d, p.spec.replicas.max)
        nodes_needed = math.ceil(pods / (per_node // per_pod))
        limit = int(pool.limits["nvidia.com/gpu"])
        assert limit >= nodes_needed * per_node, (p.name, limit, nodes_needed)
        assert limit < (nodes_needed + 1) * per_node, (p.name, limit, nodes_needed)


def _ray_stack_with_three_minimum_workers():
    """llama2-13b-inf2 with replicas {min: 3, max: 4}: the stack files' Ray models all start at one worker (3 workers a
    node: a second cluster of 3 beside 4 needs 3 nodes, where one extra worker would need 2)."""
    raw, secrets = read_stack_config(stack_file("llama2-13b-inf2"))
    models = json.loads(raw["llm-eks:models"])
    models[0]["replicas"] = {"min": 3, "max": 4}
    raw["llm-eks:models"] = json.dumps(models)
    config = load_stack_config(raw, set(secrets))
    run = run_stack("llama2-13b-inf2", raw, secrets)
    return list(plan_stack(config).models), run, render.manifests(run)


def test_a_ray_upgrade_with_three_minimum_workers_fits_the_nodepool_limit():
    test_a_ray_upgrade_fits_the_nodepool_limit(*_ray_stack_with_three_minimum_workers())


def test_a_ray_upgrade_fits_the_nodepool_limit(plans, run, manifests):
    """RayService upgradeStrategy NewCluster starts a whole second cluster of the minimum workers beside the old one."""
    assert any(m["kind"] == "RayService" for m in manifests) or not any(p.server == "rayserve" for p in plans)
    pools = {n.labels[NODEPOOL_LABEL]: n for n in nodes(run, manifests) if NODEPOOL_LABEL in n.labels}
    services = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "RayService"}
    for p in plans:
        if p.name not in services:
            continue
        spec = services[p.name]["spec"]
        assert spec["upgradeStrategy"]["type"] == "NewCluster"
        worker = spec["rayClusterConfig"]["workerGroupSpecs"][0]
        pod = worker["template"]["spec"]
        pool = pools[pod["nodeSelector"][NODEPOOL_LABEL]]
        per_node = ACCELERATORS[pool.instance_types[0]]
        per_pod = int(pod["containers"][0]["resources"]["limits"]["aws.amazon.com/neuron"])
        workers = worker["maxReplicas"] + max(1, worker["minReplicas"])
        assert int(pool.limits["aws.amazon.com/neuron"]) >= math.ceil(workers / (per_node // per_pod)) * per_node


def test_prod_spreads_each_models_replicas_over_zones(config, manifests):
    """The availability constraint of a prod stack: at least two replicas, in different zones (a zone outage
    leaves one serving); dev runs what the users need, wherever Karpenter finds capacity."""
    servers = [m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] != "gradio-chat"
               and m["metadata"]["namespace"] != ROUTER_NAMESPACE]  # the routers: no accelerator, system nodes
    for d in servers:
        spread = d["spec"]["template"]["spec"].get("topologySpreadConstraints") or []
        zonal = [c for c in spread if c["topologyKey"] == "topology.kubernetes.io/zone"
                 and c["whenUnsatisfiable"] == "DoNotSchedule"]
        scaler = next((m for m in manifests if m["kind"] == "ScaledObject"
                       and m["spec"]["scaleTargetRef"]["name"] == d["metadata"]["name"]), None)
        least = scaler["spec"]["minReplicaCount"] if scaler else d["spec"]["replicas"]
        if config.environment == "prod":
            assert least >= 2, d["metadata"]["name"]
            assert zonal and zonal[0]["labelSelector"]["matchLabels"].items() <= \
                d["spec"]["template"]["metadata"]["labels"].items()
        else:
            assert not zonal
