"""What `pulumi destroy` and Karpenter do after the first `pulumi up`: deletion protection, volumes, node lifetimes.

The rules these tests hold the program to come from the upstream code and docs the README's "Teardown" and
"Disruption" sections cite: Pulumi's engine (pkg/resource/deploy/step.go, DeleteStep.Apply refuses a protected
resource before its dry-run branch, so `pulumi destroy`'s preview fails before anything is deleted), Karpenter
v1.14.1 (website/content/en/docs/concepts/disruption.md) and the EBS CSI driver (docs/tagging.md).
"""

from __future__ import annotations

import json

from preview import render

from .conftest import recorded

CLUSTER = "eks:index:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def test_protection_asked_for_is_pulumi_protect_on_the_cluster_and_system_nodes(config, run):
    """deletionProtection alone fails only the final DeleteCluster, after every dependent is gone; `protect` on
    the cluster and the system node group makes the destroy's preview fail first. Stacks that do not ask for it
    keep a destroy that works."""
    asked = config.cluster.deletion_protection
    cluster, nodes = run.one(CLUSTER), run.one(NODE_GROUP, "cluster-system")
    assert cluster.inputs["deletionProtection"] is asked
    assert cluster.protect is asked and nodes.protect is asked
    protected = {r.name for r in run.resources if r.protect}
    assert protected == ({"cluster-eks", "cluster-system"} if asked else set())


def test_the_prod_example_asks_for_protection():
    config, _, run = recorded("qwen-g6-prod")
    assert config.cluster.deletion_protection
    assert run.one(CLUSTER).protect


def test_plan_json_records_protect_and_retain_on_delete_for_every_resource(config, plans, run):
    from plan.stack import plan_stack

    doc = json.loads(render.plan_json(render.plan_document(run, plans, plan_stack(config).cost)))
    by_name = {r["name"]: r for r in doc["resources"]}
    assert all({"protect", "retainOnDelete"} <= set(r) for r in doc["resources"])
    assert by_name["cluster-eks"]["protect"] is config.cluster.deletion_protection
    assert not any(r["retainOnDelete"] for r in doc["resources"])  # nothing is left behind on purpose


# --- Karpenter v1.14.1: expiry, drift and pods it may not evict -------------------------------------------------

DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"


def _duration_seconds(text: str) -> int:
    """A Go duration as Karpenter's CRD writes them here (720h, 1h, 30m)."""
    units = {"h": 3600, "m": 60, "s": 1}
    return int(text[:-1]) * units[text[-1]]


def _pod_templates(manifests):
    """(namespace, template) of every pod template: Deployments, and RayService heads and workers. KubeRay 1.7
    labels each pod it creates with `ray.io/group: <groupName>` (ray-operator/controllers/ray/common/pod.go)."""
    for m in manifests:
        ns = m["metadata"].get("namespace")
        if m["kind"] == "Deployment":
            yield ns, m["spec"]["template"]
        elif m["kind"] == "RayService":
            cluster = m["spec"]["rayClusterConfig"]
            yield ns, cluster["headGroupSpec"]["template"]
            for group in cluster["workerGroupSpecs"]:
                template = group["template"]
                labels = {**template["metadata"]["labels"], "ray.io/group": group["groupName"]}
                yield ns, {**template, "metadata": {**template["metadata"], "labels": labels}}


def _pool(template) -> str | None:
    return (template["spec"].get("nodeSelector") or {}).get("karpenter.sh/nodepool")


def _node_pools(manifests):
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == "NodePool"}


def test_serving_pods_are_governed_by_their_pdb_not_do_not_disrupt(plans, manifests):
    """A do-not-disrupt pod is never evicted, so its PDB is never consulted, and expiry (not bounded by NodePool
    budgets) deletes it when the node's terminationGracePeriod ends: two replicas on nodes that expire together go
    at once. Without the annotation, the termination controller evicts through the PDB (maxUnavailable 1), so the
    second replica waits until the first one's replacement is ready."""
    accelerator_pools = {p.pool for p in plans}
    pdbs = [m for m in manifests if m["kind"] == "PodDisruptionBudget"]
    serving = [(ns, t) for ns, t in _pod_templates(manifests) if _pool(t) in accelerator_pools]
    assert len(serving) == len(plans)
    for ns, template in serving:
        assert DO_NOT_DISRUPT not in (template["metadata"].get("annotations") or {}), ns
        labels = template["metadata"]["labels"]
        governing = [p for p in pdbs if p["metadata"]["namespace"] == ns
                     and p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert [p["spec"]["maxUnavailable"] for p in governing] == [1], ns


def test_every_pool_that_expires_nodes_bounds_their_drain(manifests):
    """disruption.md: 'it is not recommended to use the karpenter.sh/do-not-disrupt annotation with expireAfter if
    you have not also configured terminationGracePeriod': the cordoned node would never drain. The CPU pool holds
    the Ray head, which is do-not-disrupt."""
    pools = _node_pools(manifests)
    for name, pool in pools.items():
        spec = pool["spec"]["template"]["spec"]
        if spec.get("expireAfter", "720h") != "Never":  # 720h is the CRD's default
            assert "terminationGracePeriod" in spec, name
    for _, template in _pod_templates(manifests):
        if DO_NOT_DISRUPT in (template["metadata"].get("annotations") or {}):
            assert "terminationGracePeriod" in pools[_pool(template)]["spec"]["template"]["spec"]


def test_the_ray_head_is_the_only_do_not_disrupt_pod_and_sits_on_the_cpu_pool(manifests):
    held = [_pool(t) for _, t in _pod_templates(manifests)
            if DO_NOT_DISRUPT in (t["metadata"].get("annotations") or {})]
    assert set(held) <= {"cpu"}


def test_the_drain_lasts_long_enough_for_a_replacement_replica_to_start(plans, manifests):
    """While the PDB holds the second replica, the first one's replacement must start (the plan's startup window)
    before the node's grace period forces the second one out."""
    pools = _node_pools(manifests)
    for p in plans:
        grace = _duration_seconds(pools[p.pool]["spec"]["template"]["spec"]["terminationGracePeriod"])
        assert grace > p.startup_seconds, p.name


# --- volumes that could outlive the stack ----------------------------------------------------------------------

ADDON = "aws:eks/addon:Addon"
HELM = "kubernetes:helm.sh/v3:Release"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
# Tags the driver sets itself and refuses in a StorageClass (aws-ebs-csi-driver docs/tagging.md).
DRIVER_TAG_KEYS = ("CSIVolumeName", "CSIVolumeSnapshotName", "ebs.csi.aws.com/cluster", "kubernetes.io/cluster/")


def test_the_ebs_csi_driver_and_its_credentials_outlive_the_releases_at_destroy(run):
    """`helm uninstall` returns before PVC -> PV -> DeleteVolume is done. Deleting the add-on would remove the
    controller that calls DeleteVolume; DeleteAddon with preserve leaves it (and its pod identity association)
    running until the cluster goes (EKS API reference, DeleteAddon). Its credentials come from the Pod Identity
    agent and its IAM policy, which must last as long as the system nodes it runs on."""
    addons = {r.inputs["addonName"]: r for r in run.by_type(ADDON)}
    for name in ("aws-ebs-csi-driver", "coredns", "eks-pod-identity-agent"):
        assert addons[name].inputs.get("preserve") is True, name
    nodes = run.one(NODE_GROUP, "cluster-system")
    ebs_policy = run.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "cluster-ebs-csi")
    assert run.depends_on(nodes, ebs_policy)  # destroy removes the nodes (and the controller) first


def test_every_volume_the_storage_class_creates_carries_the_stack_tags(stack, run):
    """So that leftovers are found with `aws ec2 describe-volumes --filters Name=tag:llm-eks/stack,Values=<stack>`."""
    params = run.one(STORAGE_CLASS).inputs["parameters"]
    tags = dict(v.split("=", 1) for k, v in params.items() if k.startswith("tagSpecification"))
    assert tags["llm-eks/stack"] == stack
    assert "llm-eks/environment" in tags
    assert not [k for k in tags if k.startswith(DRIVER_TAG_KEYS)]
    assert (params["type"], params["encrypted"]) == ("gp3", "true")


def test_releases_that_claim_volumes_wait_for_the_storage_class_itself(run):
    """A PVC created before its class exists stays Pending (no default class yet, or the wrong one); depending on
    the add-on only was not enough. At destroy, the release (and its PVC) goes before the class."""
    storage_class = run.one(STORAGE_CLASS)
    name = storage_class.inputs["metadata"]["name"]
    claimers = [r for r in run.by_type(HELM) if name in json.dumps(r.plain_inputs().get("values") or {})]
    assert {r.inputs["chart"] for r in claimers} >= {"kube-prometheus-stack"}
    for release in claimers:
        assert storage_class.urn in release.dependencies, release.name
