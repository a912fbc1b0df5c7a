"""The NVIDIA device plugin (pinned Helm chart): advertises nvidia.com/gpu on GPU nodes, and only there.

Karpenter does not consider a GPU node initialized until the plugin reports its GPUs, so pods stay Pending without it.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from . import helm, versions
from config.names import ACCELERATOR_LABEL, KUBE_SYSTEM, NVIDIA_TAINT

NAMESPACE = KUBE_SYSTEM


def plugin_values() -> dict:
    """Runs where GPU NodePools put the label the chart's own affinity requires (nvidia.com/gpu.present), tolerating
    their taint; fails loudly when a node has no driver instead of advertising zero GPUs."""
    return {
        "nodeSelector": {ACCELERATOR_LABEL: "nvidia"},
        "tolerations": [
            {"key": NVIDIA_TAINT["key"], "operator": "Exists", "effect": NVIDIA_TAINT["effect"]},
            {"key": "CriticalAddonsOnly", "operator": "Exists"},
        ],
        "failOnInitError": True,
        "priorityClassName": "system-node-critical",
    }


class NvidiaDevicePlugin(pulumi.ComponentResource):
    def __init__(self, name: str, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:accelerators:NvidiaDevicePlugin", name, None, opts)
        self.release = helm.release(
            f"{name}-release", "nvidia-device-plugin", versions.NVIDIA_DEVICE_PLUGIN, NAMESPACE,
            pulumi.ResourceOptions(parent=self, provider=provider), values=plugin_values(),
            timeout_seconds=helm.SYSTEM_NODES_SECONDS,  # a DaemonSet: ready with no GPU node yet
        )
        self.register_outputs({})
