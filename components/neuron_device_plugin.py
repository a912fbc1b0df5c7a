"""The Neuron Helm chart (pinned): the device plugin, and the scheduler extension with its second scheduler.

The device plugin advertises aws.amazon.com/neuron (devices) and aws.amazon.com/neuroncore; the extension hands a pod
contiguous devices, and only pods that name its scheduler (`my-scheduler`) get them: without it, multi-device pods
stay Pending or land on devices that cannot form a tensor-parallel ring.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from . import helm, versions
from config.names import KUBE_SYSTEM, SYSTEM_NODE_LABELS

NAMESPACE = KUBE_SYSTEM


def neuron_values() -> dict:
    """The scheduler pods run on the system nodes; the node problem detector is off (it would need its own IAM and
    is not what serves the model); the device plugin keeps the chart's Neuron-instance affinity and taint toleration."""
    return {
        "scheduler": {"enabled": True, "nodeSelector": SYSTEM_NODE_LABELS,
                      "customScheduler": {"nodeSelector": SYSTEM_NODE_LABELS}},
        "npd": {"enabled": False},
    }


class NeuronDevicePlugin(pulumi.ComponentResource):
    def __init__(self, name: str, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:accelerators:NeuronDevicePlugin", name, None, opts)
        self.release = helm.release(
            f"{name}-release", "neuron-helm-chart", versions.NEURON, NAMESPACE,
            pulumi.ResourceOptions(parent=self, provider=provider), values=neuron_values(),
            timeout_seconds=helm.SYSTEM_NODES_SECONDS,
        )
        self.register_outputs({})
