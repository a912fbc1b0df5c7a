"""What a first real `pulumi up` and `pulumi destroy` need that argument names do not show: creation order against
resources named by plain strings, teardown order for the controllers that clean up, the zones EKS supports, logs the
stack owns, Helm waits long enough for new nodes, disruption budgets a drain can satisfy, and a RayService that
rolls out when its code changes and stops when its Ray install fails.

Facts from outside the code: EKS's unsupported zone ids and CloudWatch's control-plane log group name (EKS user
guide), Helm's default `--timeout` of 5m0s (`helm install --help`), and KubeRay 1.7's container command
(ray-operator/controllers/ray/common/pod.go, BuildPod: `<args> && ulimit -n ...; ray start ...`).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from components import ray_service
from preview import render
from preview.harness import ZONES, read_stack_config, run_stack, stack_file

from .conftest import recorded

EKS = "eks:index:Cluster"
RELEASE = "kubernetes:helm.sh/v3:Release"
ADDON = "aws:eks/addon:Addon"
HELM_DEFAULT_TIMEOUT_SECONDS = 300  # helm install --timeout default: 5m0s


def test_every_aws_resource_that_names_the_cluster_waits_for_it(stack, run):
    """CreateAccessEntry, CreateAddon, CreateNodegroup, ... fail while the cluster is still CREATING (~10 min)."""
    cluster = run.one(EKS)
    naming = [r for r in run.resources if r.type.startswith("aws:") and r.plain_inputs().get("clusterName") == stack]
    assert {r.type for r in naming} >= {"aws:eks/accessEntry:AccessEntry", ADDON, "aws:eks/nodeGroup:NodeGroup",
                                        "aws:eks/podIdentityAssociation:PodIdentityAssociation"}
    late = [f"{r.type} {r.name}" for r in naming if not run.depends_on(r, cluster)]
    assert not late, late


def _coredns(run):
    return next(r for r in run.by_type(ADDON) if r.plain_inputs()["addonName"] == "coredns")


def test_coredns_outlives_every_controller_that_cleans_up_at_destroy(run):
    """Destroy deletes a resource only after everything that depends on it: Karpenter's releases, node classes and
    pools (draining NodeClaims, terminating instances) and the EBS CSI controller (deleting volumes) resolve AWS
    endpoints through CoreDNS while they work."""
    coredns = _coredns(run)
    assert coredns.plain_inputs()["preserve"] is True
    needs_dns = [
        *(r for r in run.by_type(RELEASE) if r.name.startswith("karpenter")),
        *run.by_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"),
        *run.by_type("kubernetes:karpenter.sh/v1:NodePool"),
        next(r for r in run.by_type(ADDON) if r.plain_inputs()["addonName"] == "aws-ebs-csi-driver"),
    ]
    assert len(needs_dns) >= 6
    early = [r.name for r in needs_dns if not run.depends_on(r, coredns)]
    assert not early, early


def _zones_by_name():
    return {z["name"].replace("{region}", "us-east-1"): z for z in ZONES}


def test_subnets_only_in_standard_zones_that_eks_supports(config, run):
    zones = _zones_by_name()
    subnets = run.by_type("aws:ec2/subnet:Subnet")
    used = {s.plain_inputs()["availabilityZone"] for s in subnets}
    assert len(used) == config.network.availability_zones
    for name in used:
        assert zones[name]["id"] not in ("use1-az3", "usw1-az2", "cac1-az3")  # EKS user guide: no subnets there
        assert zones[name]["zoneType"] == "availability-zone" and zones[name]["optInStatus"] == "opt-in-not-required"


def _run_with(stack: str, **network):
    raw, secrets = read_stack_config(stack_file(stack))
    raw["llm-eks:network"] = json.dumps(network)
    return run_stack(stack, raw, secrets)


def test_zone_ids_in_the_stack_file_pick_exactly_those_zones():
    zones = {z["id"]: z["name"].replace("{region}", "us-east-1") for z in ZONES}
    run = _run_with("qwen-g6", zoneIds=["use1-az6", "use1-az1"])
    used = [s.plain_inputs()["availabilityZone"] for s in run.by_type("aws:ec2/subnet:Subnet")]
    assert sorted(set(used)) == sorted({zones["use1-az6"], zones["use1-az1"]})


def test_a_zone_id_the_region_does_not_offer_fails_naming_the_key():
    with pytest.raises(Exception) as err:
        _run_with("qwen-g6", zoneIds=["use1-az1", "use1-az9"])
    message = str(err.value)
    assert "llm-eks:network.zoneIds" in message and "use1-az9" in message


def test_the_stack_owns_the_control_plane_log_group(stack, config, run):
    group = run.one("aws:cloudwatch/logGroup:LogGroup")
    inputs = group.plain_inputs()
    assert inputs["name"] == f"/aws/eks/{stack}/cluster"  # the group EKS would otherwise create, and leave behind
    assert inputs["retentionInDays"] == config.cluster.log_retention_days
    assert run.depends_on(run.one(EKS), group)


def test_log_retention_defaults_by_environment():
    assert recorded("qwen-g6")[2].one("aws:cloudwatch/logGroup:LogGroup").plain_inputs()["retentionInDays"] == 30
    assert recorded("qwen-g6-prod")[2].one("aws:cloudwatch/logGroup:LogGroup").plain_inputs()["retentionInDays"] == 90


def test_every_helm_release_states_a_timeout_that_allows_for_its_nodes(run):
    for r in run.by_type(RELEASE):
        timeout = r.plain_inputs().get("timeout")
        assert timeout and timeout >= HELM_DEFAULT_TIMEOUT_SECONDS, r.name
        if r.plain_inputs()["chart"] == "open-webui":
            # a Karpenter CPU node, a new EBS volume and a ~1.5 GB image: well past Helm's five minutes
            assert timeout >= 3 * HELM_DEFAULT_TIMEOUT_SECONDS


def test_disruption_budgets_let_a_drain_finish(plans, manifests):
    """Allowed disruptions = replicas - minAvailable, or maxUnavailable: with one replica, minAvailable: 1 allows 0
    and `kubectl drain` waits forever."""
    budgets = [m for m in manifests if m["kind"] == "PodDisruptionBudget"]
    assert len(budgets) == len(plans)
    for b in budgets:
        spec = b["spec"]
        replicas = max(1, next(p.spec.replicas.min for p in plans if p.name == b["metadata"]["namespace"]))
        allowed = spec["maxUnavailable"] if "maxUnavailable" in spec else replicas - spec["minAvailable"]
        assert allowed >= 1, b["metadata"]


# --- the RayService ------------------------------------------------------------------------------------------------


def _neuron_model():
    plans = recorded("llama3-8b-inf2")[1]
    return next(p for p in plans if p.server == "rayserve")


def _groups(spec):
    cluster = spec["rayClusterConfig"]
    return [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]


def test_a_change_to_the_serve_code_rolls_out(tmp_path, monkeypatch):
    model = _neuron_model()
    before = ray_service.ray_service_spec(model, ray_service.app_hash(ray_service.app_files()))
    copy = tmp_path / "serving"
    copy.mkdir()
    for name, text in ray_service.app_files().items():
        (copy / name).write_text(text)
    (copy / "openai_api.py").write_text((copy / "openai_api.py").read_text() + "\n# a one-line change\n")
    monkeypatch.setattr(ray_service, "SERVING", copy)
    after = ray_service.ray_service_spec(model, ray_service.app_hash(ray_service.app_files()))
    for old, new in zip(_groups(before), _groups(after)):
        key = ray_service.APP_HASH_ANNOTATION
        assert old["template"]["metadata"]["annotations"][key] != new["template"]["metadata"]["annotations"][key]


def test_the_configmap_carries_every_file_the_app_imports():
    files = ray_service.app_files()
    assert {"ray_app.py", "openai_api.py", "vllm_engine.py", "settings.py", "__init__.py"} <= set(files)
    for name, text in files.items():
        for line in text.splitlines():
            if line.startswith("from .") and " import " in line:
                module = line.split()[1].lstrip(".")
                assert f"{module}.py" in files, (name, line)


def test_the_ray_head_is_not_consolidated_away():
    manifests = render.manifests(recorded("llama3-8b-inf2")[2])
    service = next(m for m in manifests if m["kind"] == "RayService")
    head = service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["metadata"]
    assert head["annotations"]["karpenter.sh/do-not-disrupt"] == "true"


def _kuberay_command(args: str) -> str:
    """The worker container's command as KubeRay 1.7 writes it (BuildPod, no `ray start` in args); KubeRay runs it
    with `bash -lc`, here `bash -c` so that the stub commands stay first on PATH."""
    return f"{args} && ulimit -n ${{RAY_START_ULIMIT_OPEN_FILES:-65536}}; ray start --address=head:6379 --block"


@pytest.mark.parametrize("pip_works", [False, True])
def test_a_failed_ray_install_stops_the_worker(tmp_path, pip_works):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pip").write_text(f"#!/bin/sh\nexit {0 if pip_works else 1}\n")
    (bin_dir / "ray").write_text(f"#!/bin/sh\ntouch {tmp_path}/ray-started\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    worker = ray_service.worker_group(_neuron_model(), "hash")
    args = worker["template"]["spec"]["containers"][0]["args"]
    assert len(args) == 1
    done = subprocess.run(["/bin/bash", "-c", "--", _kuberay_command(args[0])], capture_output=True, text=True,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=30)
    assert (tmp_path / "ray-started").exists() == pip_works
    assert (done.returncode == 0) == pip_works
