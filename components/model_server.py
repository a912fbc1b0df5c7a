"""A vLLM OpenAI-compatible server for one model on GPUs: namespace, token Secret, Deployment, Service, PDB.

Everything that sizing decided (engine arguments, GPUs, CPU, memory, /dev/shm, disk) comes from the plan; this module
only turns it into Kubernetes objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from plan.models import SERVE_PORT, ModelPlan
from config.names import MODEL_LABEL
from plan.scaling import PRE_STOP_SECONDS, TERMINATION_GRACE_SECONDS
from plan.weights import BUCKET_ENV

from . import versions
from .model_namespace import disruption_budget, namespace_with_token, token_env
from .scheduling import pod_placement, zone_spread
from .weights_cache import SERVER_SERVICE_ACCOUNT, ModelWeights, WeightsAccess

PORT = SERVE_PORT
STARTUP_PROBE_PERIOD_SECONDS = 10


def labels(model: ModelPlan) -> dict[str, str]:
    return {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": model.name, MODEL_LABEL: model.name}


def pod_spec(model: ModelPlan, bucket: pulumi.Input[str] = "") -> dict[str, Any]:
    """The server's pod; with the weights cache, its service account (Pod Identity: read the model's prefix) and the
    bucket the s3:// argument names as $(WEIGHTS_BUCKET)."""
    plan, res = model.plan, model.plan.resources
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    cached = model.weights.cached
    return {
        **pod_placement(plan.vendor, model.pool),
        **zone_spread(plan.spread_zones, labels(model)),
        **({"serviceAccountName": SERVER_SERVICE_ACCOUNT} if cached else {}),
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "containers": [{
            "name": "vllm",
            "image": versions.VLLM_IMAGE,
            "command": ["vllm", "serve"],
            "args": list(model.server_args),
            "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
            "env": [
                token_env(),
                {"name": "HF_HOME", "value": "/data/huggingface"},
                {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
                *([{"name": BUCKET_ENV, "value": bucket}] if cached else []),
            ],
            "resources": {"requests": res.requests(), "limits": res.limits()},
            # Weight download, load and CUDA-graph capture take minutes; liveness only starts after this succeeds.
            "startupProbe": {**probe, "periodSeconds": STARTUP_PROBE_PERIOD_SECONDS, "timeoutSeconds": 5,
                             "failureThreshold": math.ceil(model.startup_seconds / STARTUP_PROBE_PERIOD_SECONDS)},
            "readinessProbe": {**probe, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
            "livenessProbe": {**probe, "periodSeconds": 30, "timeoutSeconds": 10, "failureThreshold": 5},
            # Let the Service drop the endpoint before vLLM receives SIGTERM.
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SECONDS)]}}},
            "securityContext": {"allowPrivilegeEscalation": False},
            "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "data", "mountPath": "/data"}],
        }],
        "volumes": [
            # Shared memory for the API server and tensor-parallel workers (counted in the memory limit).
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{res.shm_mib}Mi"}},
            {"name": "data", "emptyDir": {"sizeLimit": f"{res.ephemeral_storage_gib}Gi"}},
        ],
    }


def deployment_spec(model: ModelPlan, bucket: pulumi.Input[str] = "") -> dict[str, Any]:
    # An autoscaled Deployment leaves `replicas` to KEDA: stating it would reset the count on every `pulumi up`.
    replicas = {} if model.autoscaled else {"replicas": model.plan.replicas}
    return {
        **replicas,
        "selector": {"matchLabels": labels(model)},
        # A new pod comes up (on a surge node the NodePool's limit allows) before the old one goes.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": model.rollout_surge, "maxUnavailable": 0}},
        "template": {
            "metadata": {
                # No karpenter.sh/do-not-disrupt: with it Karpenter never evicts the pod, so the PDB is never asked and
                # nodes that expire together lose every replica at once when their grace period ends. The PDB
                # (maxUnavailable 1) governs instead; WhenEmpty consolidation never picks a serving node.
                "labels": labels(model),
            },
            "spec": pod_spec(model, bucket),
        },
    }


@dataclass
class ModelServerArgs:
    model: ModelPlan
    hf_token: pulumi.Input[str]  # a secret Output
    provider: k8s.Provider
    node_pool: pulumi.Resource
    device_plugin: pulumi.Resource | None = None
    weights: WeightsAccess | None = None  # the stack's S3 weights cache, when the model loads from it


class ModelServer(pulumi.ComponentResource):
    """vLLM for one model; `endpoint` is its in-cluster OpenAI base URL."""

    endpoint: pulumi.Output[str]

    def __init__(self, name: str, args: ModelServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:serving:ModelServer", name, None, opts)
        model = args.model
        ns_name = model.namespace
        k8s_opts = dict(parent=self, provider=args.provider)
        namespace, secret = namespace_with_token(name, ns_name, args.hf_token, pulumi.ResourceOptions(**k8s_opts))
        in_ns = pulumi.ResourceOptions(**k8s_opts, depends_on=[namespace])
        waits = [namespace, secret, args.node_pool] + ([args.device_plugin] if args.device_plugin else [])
        bucket: pulumi.Input[str] = ""
        if model.weights.cached:
            if args.weights is None:
                raise ValueError(f"{model.name}: the plan loads from the S3 weights cache but no bucket was given")
            weights = ModelWeights(f"{name}-weights", model, args.weights, args.provider, [namespace, secret],
                                   pulumi.ResourceOptions(parent=self))
            waits += weights.ready  # the revision is in the bucket and the server's role may read it
            bucket = args.weights.bucket.name
        k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata={"name": model.name, "namespace": ns_name, "labels": labels(model)},
            spec=deployment_spec(model, bucket),
            opts=pulumi.ResourceOptions(**k8s_opts, depends_on=waits, custom_timeouts=pulumi.CustomTimeouts(create="60m", update="60m")),
        )
        k8s.core.v1.Service(
            f"{name}-service", metadata={"name": model.name, "namespace": ns_name, "labels": labels(model)},
            spec={"type": "ClusterIP", "selector": labels(model),
                  "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}]},
            opts=in_ns,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata={"name": model.name, "namespace": ns_name, "labels": labels(model)},
            spec=disruption_budget(labels(model)),
            opts=in_ns,
        )
        self.endpoint = pulumi.Output.from_input(model.endpoint)
        self.register_outputs({"endpoint": self.endpoint})
