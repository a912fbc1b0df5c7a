"""Karpenter EC2NodeClass and NodePool specs from the plan (pure functions: plan objects in, dicts out).

Accelerator pools are one per served model, limited to the instance type its plan chose, tainted so only the
model's pods land there, capped at what the model's replica bound needs, and never consolidated while a model
runs on them. A CPU pool takes UIs, Ray heads and helpers.
"""

from __future__ import annotations

from typing import Any

from plan.models import ModelPlan
from plan.names import ACCELERATOR_LABEL, CPU_POOL, MODEL_LABEL, NVIDIA_GPU_PRESENT_LABEL, POOL_LABEL, TAINTS

from .versions import AL2023_AMI_ALIAS

NODE_CLASS_GROUP = "karpenter.k8s.aws"
EXPIRE_AFTER = "720h"  # replace nodes monthly (AMI and kernel updates) ...
TERMINATION_GRACE = "1h"  # ... giving in-flight requests up to an hour to finish when one is replaced
CPU_POOL_LIMITS = {"cpu": "64", "memory": "256Gi"}


def node_class_spec(*, cluster_name: str, node_role: str, disk_gib: int, tags: dict[str, str]) -> dict[str, Any]:
    """Private subnets and the EKS cluster security group, IMDSv2 only (hop limit 1: pods get no node
    credentials), an encrypted gp3 root volume large enough for the image, weights and compiled artifacts."""
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
        "blockDeviceMappings": [{
            "deviceName": "/dev/xvda",
            "ebs": {"volumeSize": f"{disk_gib}Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True},
        }],
        "tags": {**tags, "karpenter.sh/discovery": cluster_name},
    }


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
        # Only empty nodes are consolidated: a node serving a model is never drained to save money, and at most
        # one node of the pool is disrupted at a time.
        "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10m", "budgets": [{"nodes": "1"}]},
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
            },
        },
        "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "5m",
                       "budgets": [{"nodes": "10%"}]},
        "limits": CPU_POOL_LIMITS,
    }
