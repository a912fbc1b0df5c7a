"""One way to install a pinned chart from components/versions.py, from an OCI registry or an https repository."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .versions import Chart


# Helm waits for a release's pods to be ready, 300 s by default (helm install --timeout). On a fresh cluster that is
# too short for anything that waits on a node Karpenter has yet to launch (about a minute to a running node), an EBS
# volume, or a large image: every release states how long it may take, and Pulumi waits as long.
SYSTEM_NODES_SECONDS = 600  # pods on the managed system node group: nodes exist, images are small
NEW_NODE_SECONDS = 1800  # pods on a Karpenter node: launch, join, image pull (Open WebUI: ~1.5 GB) and a volume


def release(resource_name: str, release_name: str, chart: Chart, namespace: str, opts: pulumi.ResourceOptions, *,
            timeout_seconds: int, values: pulumi.Input[dict[str, Any]] | None = None, **kwargs: Any) -> k8s.helm.v3.Release:
    """A helm.v3.Release of `chart` at its pinned version that may take `timeout_seconds` to become ready; extra
    kwargs (skip_crds, create_namespace) pass through."""
    repo = k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo) if chart.repo else None
    timeouts = pulumi.CustomTimeouts(create=f"{timeout_seconds + 60}s", update=f"{timeout_seconds + 60}s")
    return k8s.helm.v3.Release(
        resource_name, name=release_name, chart=chart.name, version=chart.version, repository_opts=repo,
        namespace=namespace, values=values or {}, timeout=timeout_seconds,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(custom_timeouts=timeouts)), **kwargs,
    )
