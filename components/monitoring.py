"""Metrics: a small, pinned kube-prometheus-stack (Prometheus Operator, Prometheus, Grafana, kube-state-metrics,
node-exporter), NVIDIA's DCGM exporter on GPU nodes, the project's Grafana dashboard per model with its instance's
$/h, and the monitors that tell Prometheus what to scrape: vLLM pods, Ray head and workers, DCGM.

Placement: everything except the DaemonSets runs on the managed system node group (`llm-eks/pool: system`), not on
the Karpenter CPU pool. The autoscaler (components/autoscaling.py) reads Prometheus, so Prometheus must not depend
on the capacity it helps to scale: the CPU pool consolidates underused nodes (WhenEmptyOrUnderutilized), which would
restart Prometheus and blind KEDA for minutes, and a stack without a chat UI would launch a CPU node for monitoring
alone. The system nodes exist and are paid for anyway; the requests below total about 0.6 vCPU and 2 GiB. One
caveat: Prometheus's gp3 volume lives in one zone; if the node group ever has no node left in that zone, the pod
stays Pending until it has (or the PVC is deleted: the data is a few days of metrics).

Amazon Managed Service for Prometheus as a stack option is a follow-up: it would replace the in-cluster Prometheus
with remote_write from a Prometheus agent (prometheus.agentMode) and point Grafana and KEDA at the AMP workspace
with SigV4 (a TriggerAuthentication using Pod Identity); the monitors below stay as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from plan.models import ModelPlan
from config.names import (ACCELERATOR_LABEL, MODEL_LABEL, MONITORING_NAMESPACE, NVIDIA_TAINT, STORAGE_CLASS,
                        SYSTEM_NODE_LABELS)

from . import helm, versions
from .dashboards import vllm as vllm_dashboard
from .model_server import labels as vllm_labels

NAMESPACE = MONITORING_NAMESPACE
RELEASE = "kube-prometheus-stack"
DCGM_RELEASE = "dcgm-exporter"
PROMETHEUS_PORT = 9090  # prometheus.service.port
# kube-prometheus-stack's Grafana sidecar loads every ConfigMap with this label (grafana.sidecar.dashboards).
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
SCRAPE_INTERVAL = "15s"  # KEDA polls every 15 s; the chart's default (30 s) would halve how fresh its signal is

# Ray (KubeRay 1.7): every head and worker gets a container port `metrics` (8080) unless the template names one
# (ray-operator/controllers/ray/common/pod.go, utils.MetricsPortName / DefaultMetricsPort), and pods carry
# ray.io/node-type (head | worker) and ray.io/cluster (config/prometheus/podMonitor.yaml relabels the latter).
RAY_METRICS_PORT = "metrics"
RAY_NODE_TYPE_LABEL = "ray.io/node-type"
# DCGM exporter chart 4.8.2: the DaemonSet's port and its Service's port are both named `metrics` (9400).
DCGM_PORT = "metrics"
GPU_NODE_SELECTOR = {ACCELERATOR_LABEL: "nvidia"}  # what GPU NodePools label their nodes with

# --------------------------------------------------------------------------- names the charts create


def _helm_fullname(release: str, chart: str, trunc: int, fullname_override: str = "") -> str:
    """The usual `<chart>.fullname` helper: the override, else the release name if it contains the chart's name,
    else `<release>-<chart>`, truncated and without a trailing '-'."""
    name = fullname_override or (release if chart in release else f"{release}-{chart}")
    return name[:trunc].rstrip("-")


def stack_fullname(release: str = RELEASE) -> str:
    """kube-prometheus-stack 88.x templates/_helpers.tpl `kube-prometheus-stack.fullname`: truncated to 26
    characters (its components append up to 37 more)."""
    return _helm_fullname(release, "kube-prometheus-stack", 26)


def prometheus_service(release: str = RELEASE) -> str:
    """templates/prometheus/service.yaml: `{{ fullname }}-prometheus`, port prometheus.service.port (9090).
    Release `kube-prometheus-stack` -> `kube-prometheus-stack-prometheus`; release `prometheus` ->
    `prometheus-kube-prometheus-prometheus` (the 26-character truncation)."""
    return f"{stack_fullname(release)}-prometheus"


def prometheus_url(release: str = RELEASE, namespace: str = NAMESPACE) -> str:
    """Prometheus's in-cluster HTTP address: KEDA's serverAddress, and what `kubectl port-forward` reaches."""
    return f"http://{prometheus_service(release)}.{namespace}.svc.cluster.local:{PROMETHEUS_PORT}"


def grafana_service(release: str = RELEASE) -> str:
    """The grafana subchart's `grafana.fullname` (no override in kube-prometheus-stack's values)."""
    return _helm_fullname(release, "grafana", 63)


def dcgm_selector(release: str = DCGM_RELEASE) -> dict[str, str]:
    """dcgm-exporter chart templates/_helpers.tpl `dcgm-exporter.selectorLabels` (its Service's labels include them)."""
    return {"app.kubernetes.io/name": "dcgm-exporter", "app.kubernetes.io/instance": release,
            "app.kubernetes.io/component": "dcgm-exporter"}


# --------------------------------------------------------------------------- Helm values


def stack_values(*, retention: str = "7d", retention_size: str = "8GB", storage_gib: int = 10,
                 storage_class: str = STORAGE_CLASS, alertmanager: bool = False) -> dict[str, Any]:
    """kube-prometheus-stack 88.5.3 with a small footprint.

    - Prometheus selects every PodMonitor/ServiceMonitor/rule in the cluster, not only those labelled with its
      release (the `*SelectorNilUsesHelmValues: false` settings): the monitors below carry no release label.
    - Alertmanager off: nothing here routes alerts yet (no receiver); turn it on with `alertmanager=True`.
    - EKS runs the control plane: etcd, the scheduler and the controller manager cannot be scraped, and
      kube-proxy listens on 127.0.0.1 for metrics; their monitors would only report targets down.
    - node-exporter stays (a DaemonSet on every node, GPU and Neuron included: its chart tolerates every
      NoSchedule taint): host CPU, memory and disk next to the serving metrics.
    - Grafana keeps no state worth a volume: its datasource and dashboards are provisioned from ConfigMaps; the
      admin password is generated into the Secret `<release>-grafana`.
    """
    on_system = {"nodeSelector": dict(SYSTEM_NODE_LABELS)}
    return {
        "alertmanager": {"enabled": alertmanager, "alertmanagerSpec": {**on_system}},
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeEtcd": {"enabled": False},
        "kubeProxy": {"enabled": False},
        "prometheusOperator": {
            **on_system,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "admissionWebhooks": {"patch": {**on_system}},
        },
        "prometheus": {"prometheusSpec": {
            **on_system,
            "serviceMonitorSelectorNilUsesHelmValues": False,
            "podMonitorSelectorNilUsesHelmValues": False,
            "ruleSelectorNilUsesHelmValues": False,
            "probeSelectorNilUsesHelmValues": False,
            "scrapeConfigSelectorNilUsesHelmValues": False,
            "scrapeInterval": SCRAPE_INTERVAL,
            "retention": retention,
            "retentionSize": retention_size,
            "resources": {"requests": {"cpu": "200m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
            # The volume goes with the release (destroy removes it while the EBS CSI driver still runs), instead of
            # outliving the stack as a StatefulSet's PVC does by default.
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
            "storageSpec": {"volumeClaimTemplate": {"spec": {
                "storageClassName": storage_class,
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": f"{storage_gib}Gi"}},
            }}},
        }},
        "grafana": {
            "enabled": True,
            **on_system,
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            "sidecar": {"dashboards": {"enabled": True, "label": next(iter(DASHBOARD_LABEL)),
                                       "labelValue": next(iter(DASHBOARD_LABEL.values()))}},
        },
        "kube-state-metrics": {
            **on_system,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        },
        "prometheus-node-exporter": {
            "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        },
    }


def dcgm_values() -> dict[str, Any]:
    """dcgm-exporter 4.8.2 on GPU nodes only (the label GPU NodePools put on their nodes), tolerating their taint.
    The EKS AL2023 NVIDIA AMI makes the NVIDIA runtime containerd's default, and the image sets
    NVIDIA_VISIBLE_DEVICES=all, so no runtimeClassName is needed. The chart's own ServiceMonitor is off: ours
    (dcgm_service_monitor) is validated against the CRD and created after the Prometheus Operator's CRDs."""
    return {
        "nodeSelector": dict(GPU_NODE_SELECTOR),
        "tolerations": [{"key": NVIDIA_TAINT["key"], "operator": "Exists", "effect": NVIDIA_TAINT["effect"]}],
        "serviceMonitor": {"enabled": False},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    }


# --------------------------------------------------------------------------- monitors


def _monitor_meta(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "llm-eks"}}


def vllm_pod_monitor(model: ModelPlan) -> dict[str, Any]:
    """vLLM's /metrics on the container port `http` of the model's pods (components/model_server.py)."""
    selector = {k: v for k, v in vllm_labels(model).items() if k != MODEL_LABEL}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": _monitor_meta(f"vllm-{model.name}"),
        "spec": {
            "namespaceSelector": {"matchNames": [model.namespace]},
            "selector": {"matchLabels": selector},
            "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": SCRAPE_INTERVAL}],
        },
    }


def ray_pod_monitor(model: ModelPlan) -> dict[str, Any]:
    """Ray's metrics agent (port `metrics`, 8080) on the head and every worker of the model's RayCluster: Ray
    Serve's ray_serve_* metrics and Ray's own. `ray_io_cluster` as KubeRay's Grafana dashboards expect it."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": _monitor_meta(f"ray-{model.name}"),
        "spec": {
            "namespaceSelector": {"matchNames": [model.namespace]},
            "selector": {
                "matchLabels": {MODEL_LABEL: model.name},
                "matchExpressions": [{"key": RAY_NODE_TYPE_LABEL, "operator": "In", "values": ["head", "worker"]}],
            },
            "podMetricsEndpoints": [{
                "port": RAY_METRICS_PORT, "path": "/metrics", "interval": SCRAPE_INTERVAL,
                "relabelings": [{"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_label_ray_io_cluster"],
                                 "targetLabel": "ray_io_cluster"}],
            }],
        },
    }


def dcgm_service_monitor() -> dict[str, Any]:
    """The DCGM exporter's Service. honorLabels: the exporter labels each GPU with the pod, namespace and container
    using it (from the kubelet's pod-resources API); those must win over the exporter pod's own target labels, so
    `DCGM_FI_DEV_GPU_UTIL{namespace="<model>"}` is the model's GPU."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _monitor_meta("dcgm-exporter"),
        "spec": {
            "namespaceSelector": {"matchNames": [NAMESPACE]},
            "selector": {"matchLabels": dcgm_selector()},
            "endpoints": [{"port": DCGM_PORT, "path": "/metrics", "interval": SCRAPE_INTERVAL, "honorLabels": True}],
        },
    }


def wants_dcgm(models: list[ModelPlan]) -> bool:
    return any(m.plan.vendor == "nvidia" for m in models)


def monitors(models: list[ModelPlan], dcgm: bool | None = None) -> list[dict[str, Any]]:
    """Every monitor a stack needs: one per model (vLLM or Ray), and DCGM's (by default when a model runs on NVIDIA
    GPUs)."""
    out = [vllm_pod_monitor(m) if m.server == "vllm" else ray_pod_monitor(m) for m in models]
    if wants_dcgm(models) if dcgm is None else dcgm:
        out.append(dcgm_service_monitor())
    return out


# --------------------------------------------------------------------------- dashboards


def dashboard_for(model: ModelPlan) -> dict[str, Any]:
    """The vLLM dashboard (components/dashboards/vllm.py) for one model: its namespace and its planned fleet's $/h
    (the instance's on-demand price x the nodes its planned replicas need) as the variables' defaults, and its own uid
    and title (instance type and $/h in it), so every model of a stack has one dashboard."""
    plan = model.plan
    hourly = plan.fleet_hourly_usd or plan.hourly_usd
    board = vllm_dashboard.dashboard(hourly_usd=round(hourly, 4), namespace=model.namespace)
    board["uid"] = f"{vllm_dashboard.UID}-{model.name}"[:40]  # Grafana's uid limit
    board["title"] = f"{board['title']}: {model.name} ({plan.instance_type}, ${hourly:.2f}/h)"
    return board


def dashboard_config_map(model: ModelPlan) -> dict[str, Any]:
    """A ConfigMap the Grafana sidecar picks up (its label) holding the model's dashboard. Ray Serve models get none:
    their vLLM runs inside Ray Serve replicas and exports no vllm:* series (Ray Serve's own ray_serve_* metrics are
    scraped; KubeRay's Serve dashboards are the follow-up)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"dashboard-{model.name}", "namespace": NAMESPACE,
                     "labels": {**DASHBOARD_LABEL, MODEL_LABEL: model.name}},
        "data": {f"{model.name}.json": json.dumps(dashboard_for(model), indent=1, sort_keys=True)},
    }


# --------------------------------------------------------------------------- the component


@dataclass
class MonitoringArgs:
    models: list[ModelPlan]
    provider: k8s.Provider
    # What Prometheus's pods need first: the system node group, and the EBS CSI driver that provisions its volume.
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    retention: str = "7d"
    retention_size: str = "8GB"  # below the volume: Prometheus deletes old blocks before the disk fills
    storage_gib: int = 10
    storage_class: str = STORAGE_CLASS
    alertmanager: bool = False
    dcgm: bool | None = None  # None: when a model runs on NVIDIA GPUs


class Monitoring(pulumi.ComponentResource):
    """Prometheus and Grafana (kube-prometheus-stack), the DCGM exporter, dashboards and monitors.
    `prometheus_url` is the in-cluster address KEDA queries; `release` is what monitors and scalers wait for."""

    prometheus_url: pulumi.Output[str]
    grafana_service: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:observability:Monitoring", name, None, opts)
        k8s_opts = dict(parent=self, provider=args.provider)
        namespace = k8s.core.v1.Namespace(f"{name}-namespace", metadata={"name": NAMESPACE},
                                          opts=pulumi.ResourceOptions(**k8s_opts))
        self.release = helm.release(
            f"{name}-stack", RELEASE, versions.KUBE_PROMETHEUS_STACK, NAMESPACE,
            pulumi.ResourceOptions(**k8s_opts, depends_on=[namespace, *args.depends_on]),
            values=stack_values(retention=args.retention, retention_size=args.retention_size,
                                storage_gib=args.storage_gib, storage_class=args.storage_class,
                                alertmanager=args.alertmanager),
            timeout_seconds=helm.SYSTEM_NODES_SECONDS,
        )
        after_crds = pulumi.ResourceOptions(**k8s_opts, depends_on=[self.release])
        dcgm = wants_dcgm(args.models) if args.dcgm is None else args.dcgm
        self.dcgm_release = None
        if dcgm:
            self.dcgm_release = helm.release(
                f"{name}-dcgm-exporter", DCGM_RELEASE, versions.DCGM_EXPORTER, NAMESPACE, after_crds,
                values=dcgm_values(), timeout_seconds=helm.SYSTEM_NODES_SECONDS,  # a DaemonSet: ready with no GPU node
            )
        for m in monitors(args.models, dcgm):
            k8s.apiextensions.CustomResource(
                f"{name}-{m['metadata']['name']}", api_version=m["apiVersion"], kind=m["kind"],
                metadata=m["metadata"], spec=m["spec"], opts=after_crds,
            )
        for model in args.models:
            if model.server == "vllm":
                cm = dashboard_config_map(model)
                k8s.core.v1.ConfigMap(f"{name}-{cm['metadata']['name']}", metadata=cm["metadata"], data=cm["data"],
                                      opts=pulumi.ResourceOptions(**k8s_opts, depends_on=[namespace]))
        self.prometheus_url = pulumi.Output.from_input(prometheus_url())
        self.grafana_service = pulumi.Output.from_input(grafana_service())
        self.register_outputs({"prometheus_url": self.prometheus_url, "grafana_service": self.grafana_service})
