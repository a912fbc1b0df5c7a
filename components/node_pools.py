"""Karpenter EC2NodeClass and NodePool specs from the plan (pure functions: plan objects in, dicts out).

Accelerator pools are one per served model, limited to the instance type its plan chose, tainted so only the
model's pods land there, capped at what the model's replica bound needs, and consolidated only when empty. A CPU
pool takes UIs, Ray heads and helpers.

Every pool that expires its nodes also bounds their drain (terminationGracePeriod): Karpenter v1.14's expiry is
forceful and not limited by the pool's budgets, and a pod it may not evict (a blocking PodDisruptionBudget, or
`karpenter.sh/do-not-disrupt` such as the Ray head's) would otherwise hold a cordoned node, billed, forever
(karpenter-provider-aws v1.14.1, website/content/en/docs/concepts/disruption.md, "Expiration" and "Pod-Level
Controls"). Serving pods carry no do-not-disrupt: their PodDisruptionBudget (maxUnavailable 1) lets one replica go
at a time, for expiry and drift alike.
"""

from __future__ import annotations

from typing import Any

from plan.cold_start import rates
from plan.models import ModelPlan
from config.names import ACCELERATOR_LABEL, CPU_POOL, MODEL_LABEL, NVIDIA_GPU_PRESENT_LABEL, POOL_LABEL, TAINTS

from .versions import AL2023_AMI_ALIAS

NODE_CLASS_GROUP = "karpenter.k8s.aws"
EXPIRE_AFTER = "720h"  # replace nodes monthly (AMI and kernel updates) ...
# ... and drain each within an hour: long enough for a replacement replica to start (the plans' startup windows are
# 16-21 minutes) while the PDB holds the next one, short enough that nothing blocks a node for good.
TERMINATION_GRACE = "1h"
CPU_POOL_LIMITS = {"cpu": "64", "memory": "256Gi"}
EMPTY_NODE_AFTER = "10m"  # an accelerator node with no model pod left (scale-down, scale to zero) goes after this


# nodeadm's NodeConfig, merged by Karpenter into the AL2023 user data it writes (a MIME part of type
# application/node.eks.aws): FastImagePull makes containerd pull through the SOCI snapshotter's parallel
# pull-and-unpack mode (awslabs/amazon-eks-ami nodeadm/doc/examples.md, "Enabling fast image pull").
FAST_IMAGE_PULL_USER_DATA = """MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="//"

--//
Content-Type: application/node.eks.aws

apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  featureGates:
    FastImagePull: true

--//--
"""


def node_class_spec(*, cluster_name: str, node_role: str, disk_gib: int, tags: dict[str, str],
                    fast_image_pull: bool = False) -> dict[str, Any]:
    """Private subnets and the EKS cluster security group, IMDSv2 only (hop limit 1: pods get no node
    credentials), an encrypted gp3 root volume large enough for the image, weights and compiled artifacts.

    `fast_image_pull` (the accelerator classes, whose ~10 GB images every new node pulls): the parallel pull, and the
    root volume throughput nodeadm's guide asks for with it (plan/cold_start.py counts it in the budget). Chosen over
    an EBS snapshot holding the images (a build pipeline per image and region, and blocks restored lazily from S3
    unless Fast Snapshot Restore is paid per snapshot and zone) and a pre-pull DaemonSet (on a new node it pulls at
    the same time as the pod: nothing gained when every wake-up is a new node)."""
    ebs: dict[str, Any] = {"volumeSize": f"{disk_gib}Gi", "volumeType": "gp3", "encrypted": True,
                           "deleteOnTermination": True}
    extra: dict[str, Any] = {}
    if fast_image_pull:
        ebs["throughput"] = parallel_pull_throughput_mib_s()
        extra["userData"] = FAST_IMAGE_PULL_USER_DATA
    return {
        "role": node_role,
        "amiSelectorTerms": [{"alias": AL2023_AMI_ALIAS}],
        "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": cluster_name}}],
        # EKS tags the cluster security group it creates with aws:eks:cluster-name (an aws: tag nobody else can set).
        "securityGroupSelectorTerms": [{"tags": {"aws:eks:cluster-name": cluster_name}}],
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": 1,
            "httpTokens": "required",
        },
        "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": ebs}],
        "tags": {**tags, "karpenter.sh/discovery": cluster_name},
        **extra,
    }


def parallel_pull_throughput_mib_s() -> int:
    return int(rates()["parallel_pull"]["root_volume_throughput_mib_s"]["value"])


def accelerator_pool_spec(model: ModelPlan) -> dict[str, Any]:
    """The model's own pool: its planned instance type only, tainted for its pods, limited (Karpenter counts node
    capacity) to the nodes that max replicas plus the rollout surge need, so a runaway scale-out stops there."""
    plan = model.plan
    labels = {MODEL_LABEL: model.name, ACCELERATOR_LABEL: plan.vendor}
    if plan.vendor == "nvidia":
        labels[NVIDIA_GPU_PRESENT_LABEL] = "true"  # the NVIDIA device plugin's node affinity requires it
    return {
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "nodeClassRef": {"group": NODE_CLASS_GROUP, "kind": "EC2NodeClass", "name": plan.vendor},
                "requirements": [
                    {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [plan.instance_type]},
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": [model.spec.capacity_type]},
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                ],
                "taints": [TAINTS[plan.vendor]],
                "expireAfter": EXPIRE_AFTER,
                "terminationGracePeriod": TERMINATION_GRACE,
            },
        },
        # Only empty nodes are consolidated: a node serving a model is never drained to save money. The budget
        # limits drift and consolidation to one node at a time (not expiry: the PDB serialises that).
        "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": EMPTY_NODE_AFTER,
                       "budgets": [{"nodes": "1"}]},
        "limits": dict(model.node_limits),
        "weight": 10,
    }


def cpu_pool_spec() -> dict[str, Any]:
    return {
        "template": {
            "metadata": {"labels": {POOL_LABEL: CPU_POOL}},
            "spec": {
                "nodeClassRef": {"group": NODE_CLASS_GROUP, "kind": "EC2NodeClass", "name": CPU_POOL},
                "requirements": [
                    {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m", "r"]},
                    {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["5"]},
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                ],
                "expireAfter": EXPIRE_AFTER,
                # The Ray head is do-not-disrupt (never consolidated away); on expiry it still goes, after this.
                "terminationGracePeriod": TERMINATION_GRACE,
            },
        },
        "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "5m",
                       "budgets": [{"nodes": "10%"}]},
        "limits": CPU_POOL_LIMITS,
    }
