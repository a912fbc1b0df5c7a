"""Placement of pods on the node pools: NodePools taint accelerator nodes; model-server pods tolerate exactly those
taints and select their pool by `karpenter.sh/nodepool`. Neuron pods also name the second scheduler the Neuron Helm
chart installs (the extender that hands out contiguous devices): without it they stay Pending. The names come from
config/names.py.
"""

from __future__ import annotations

from typing import Any

from config.names import CPU_POOL, NEURON_SCHEDULER, NODEPOOL_LABEL, SYSTEM_NODE_LABELS, TAINTS, ZONE_LABEL


def toleration(taint: dict[str, str]) -> dict[str, Any]:
    return {"key": taint["key"], "operator": "Equal", "value": taint["value"], "effect": taint["effect"]}


def pod_placement(vendor: str, pool: str) -> dict[str, Any]:
    """nodeSelector, tolerations and (Neuron) schedulerName for a pod that uses accelerators of `pool`."""
    placement: dict[str, Any] = {
        "nodeSelector": {NODEPOOL_LABEL: pool},
        "tolerations": [toleration(TAINTS[vendor])],
    }
    if vendor == "neuron":
        placement["schedulerName"] = NEURON_SCHEDULER
    return placement


def zone_spread(zones: int, selector: dict[str, str]) -> dict[str, Any]:
    """Replicas spread evenly over `zones` zones (the plan counted nodes for this spread): an AZ outage takes at
    most its share. Nothing for a single zone."""
    if zones < 2:
        return {}
    return {"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": ZONE_LABEL, "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": dict(selector)},
    }]}


def cpu_placement() -> dict[str, Any]:
    """UIs, Ray heads and helpers go to the CPU pool, never to accelerator nodes."""
    return {"nodeSelector": {NODEPOOL_LABEL: CPU_POOL}}


def system_placement() -> dict[str, Any]:
    """Controllers and operators run on the managed system node group, never on nodes Karpenter may remove."""
    return {"nodeSelector": dict(SYSTEM_NODE_LABELS)}
