"""The KubeRay operator (pinned Helm release): it owns RayService, RayCluster and RayJob and their CRDs."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from . import helm, versions
from config.names import KUBERAY_NAMESPACE

from .scheduling import system_placement

NAMESPACE = KUBERAY_NAMESPACE


class KubeRayOperator(pulumi.ComponentResource):
    def __init__(self, name: str, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:serving:KubeRayOperator", name, None, opts)
        self.release = helm.release(
            f"{name}-release", "kuberay-operator", versions.KUBERAY_OPERATOR, NAMESPACE,
            pulumi.ResourceOptions(parent=self, provider=provider), values=system_placement(),
            create_namespace=True, timeout_seconds=helm.SYSTEM_NODES_SECONDS,
        )
        self.register_outputs({})
