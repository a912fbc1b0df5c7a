"""Ray Serve on KubeRay for one model on AWS Neuron: namespace, token Secret, the serve app's code in a ConfigMap,
and a RayService whose head sits on the CPU pool and whose workers hold the model's NeuronCores.

The serve application is the project's own code (serving/): the RayService mounts it on head and workers and
imports `serving.ray_app:app`. Its settings come from the sizing plan through serving/settings.py, the one module
that names the environment variables the app reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from plan.models import SERVE_PORT, ModelPlan
from config.names import DO_NOT_DISRUPT, MODEL_LABEL
from serving import compile_cache
from serving.settings import to_env

from . import versions
from .app_code import code_hash, read_files
from .autoscaling import ray_serve_autoscaling_config
from .model_namespace import disruption_budget, namespace_with_token, token_env
from .scheduling import cpu_placement, pod_placement, zone_spread
from .weights_cache import COMPILE_SERVICE_ACCOUNT, CompileCache, WeightsAccess

SERVING = Path(__file__).resolve().parents[1] / "serving"
APP_SUFFIXES = (".py", ".jinja")  # the serve app's modules and the chat templates it ships
APP_HASH_ANNOTATION = "llm-eks/serve-app-sha256"
APP_ROOT = "/opt/llm-eks"  # the ConfigMap is mounted at APP_ROOT/serving, so `serving.ray_app` imports
CONFIG_MAP = "serve-app"
WORKER_GROUP = "neuron"
# The head runs the GCS, dashboard, Serve controller and HTTP proxy, no replicas (num-cpus 0).
HEAD_RESOURCES = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi"}}
# A cold start pulls a multi-GB image, downloads the weights and compiles the model for NeuronCores (10-20 minutes
# for an 8B model); KubeRay must not give up on the cluster meanwhile.
INITIALIZING_TIMEOUT = "2h"
CACHE_BUCKET_ENV = "CACHE_BUCKET"  # the stack's bucket, named in the compile cache's s3:// URL as $(CACHE_BUCKET)


def compiled_artifacts_dir(model: ModelPlan) -> str:
    """One folder per compiled shape: NxDI reloads whatever it finds there, even if the engine arguments changed."""
    s = model.engine_settings
    slug = re.sub(r"[^a-z0-9]+", "-", s.model.lower()).strip("-")
    return f"/data/neuron-compiled/{slug}-tp{s.tensor_parallel_size}-len{s.max_model_len}-bs{s.max_num_seqs}"


def compile_cache_prefix(model: ModelPlan) -> str:
    """The model's compiled shape in the stack's bucket, under the Neuron image's tag: a compile is only valid for
    the compiler (Neuron SDK) that made it."""
    tag = versions.NEURON_VLLM_IMAGE.rsplit(":", 1)[-1]
    return f"neuron-compiled/{tag}/{Path(compiled_artifacts_dir(model)).name}"


def app_files() -> dict[str, str]:
    """Every module and template of serving/, as the ConfigMap's data."""
    return read_files(SERVING, APP_SUFFIXES)


def app_hash(files: dict[str, str]) -> str:
    """KubeRay does not watch the ConfigMap: a change to the serve code reaches the pods only through their
    templates, where this hash sits, so the RayService rolls out a new cluster (upgradeStrategy NewCluster)."""
    return code_hash(files)


def worker_command() -> str:
    """KubeRay 1.7 runs `<this> && ulimit ...; ray start ...` (common/pod.go BuildPod): after `&&` and `;`, a failed
    install would still reach `ray start` with the image's own Ray, so the failure exits the container instead."""
    return (f"pip install --no-cache-dir 'ray[serve]=={versions.RAY_VERSION}' "
            f"|| {{ echo 'llm-eks: installing Ray {versions.RAY_VERSION} failed' >&2; exit 1; }}")


def serve_config(model: ModelPlan) -> str:
    """serveConfigV2: one application, one deployment whose replicas each take the plan's NeuronCores."""
    s = model.engine_settings
    deployment: dict[str, Any] = {
        "name": "llm",
        # Serve admits up to twice the compiled batch per replica; vLLM queues what exceeds the batch.
        "max_ongoing_requests": 2 * s.max_num_seqs,
        "ray_actor_options": {"num_cpus": 1, "resources": {"neuron_cores": s.tensor_parallel_size}},
        "health_check_period_s": 10,
        "health_check_timeout_s": 60,
        "graceful_shutdown_timeout_s": 60,
    }
    if model.scaling:
        deployment["autoscaling_config"] = ray_serve_autoscaling_config(model, model.scaling)
    else:
        deployment["num_replicas"] = model.plan.replicas
    app = {"name": "llm", "import_path": "serving.ray_app:app", "route_prefix": "/", "deployments": [deployment]}
    return yaml.safe_dump({"applications": [app]}, sort_keys=False)


def _common_env() -> list[dict[str, Any]]:
    return [
        {"name": "PYTHONPATH", "value": APP_ROOT},
        # Head (Ray's image) and workers (the Neuron image) share Python 3.12 but not necessarily its patch level.
        {"name": "RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL", "value": "minor"},
    ]


def _app_volume() -> tuple[dict, dict]:
    return ({"name": "serve-app", "configMap": {"name": CONFIG_MAP}},
            {"name": "serve-app", "mountPath": f"{APP_ROOT}/serving", "readOnly": True})


def head_group(model: ModelPlan, code_hash: str) -> dict[str, Any]:
    volume, mount = _app_volume()
    return {
        "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
        "template": {
            # The head holds the Serve controller and the cluster's state: the CPU pool consolidates underused nodes,
            # and moving the head would restart every replica. Expiry still replaces its node, after the CPU pool's
            # terminationGracePeriod (do-not-disrupt pods are deleted when it runs out).
            "metadata": {"labels": {MODEL_LABEL: model.name},
                         "annotations": {**DO_NOT_DISRUPT, APP_HASH_ANNOTATION: code_hash}},
            "spec": {
                **cpu_placement(),
                "containers": [{
                    "name": "ray-head",
                    "image": versions.RAY_HEAD_IMAGE,
                    "resources": HEAD_RESOURCES,
                    "ports": [{"name": "gcs", "containerPort": 6379}, {"name": "dashboard", "containerPort": 8265},
                              {"name": "client", "containerPort": 10001}, {"name": "serve", "containerPort": SERVE_PORT}],
                    "env": _common_env(),
                    "volumeMounts": [mount],
                }],
                "volumes": [volume],
            },
        },
    }


def worker_group(model: ModelPlan, code_hash: str, bucket: pulumi.Input[str] | None = None) -> dict[str, Any]:
    """The Neuron workers; with `bucket`, the compile cache on S3 (serving/compile_cache.py) through the
    `ray-worker` service account's Pod Identity role."""
    plan, replicas, res = model.plan, model.spec.replicas, model.plan.resources
    settings = model.engine_settings
    volume, mount = _app_volume()
    env = [
        *_common_env(),
        *({"name": k, "value": v} for k, v in to_env(settings).items()),
        token_env(),
        {"name": "HF_HOME", "value": "/data/huggingface"},
        {"name": "NEURON_COMPILED_ARTIFACTS", "value": compiled_artifacts_dir(model)},
        {"name": "VLLM_ENGINE_READY_TIMEOUT_S", "value": "3600"},  # vLLM's default 600 s is shorter than a compile
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
    ]
    cache: dict[str, Any] = {}
    if bucket is not None:
        env += [{"name": CACHE_BUCKET_ENV, "value": bucket},
                {"name": compile_cache.ENV, "value": f"s3://$({CACHE_BUCKET_ENV})/{compile_cache_prefix(model)}"}]
        cache = {"serviceAccountName": COMPILE_SERVICE_ACCOUNT}
    return {
        "groupName": WORKER_GROUP,
        "replicas": model.plan.replicas,
        "minReplicas": replicas.min,
        "maxReplicas": replicas.max,
        # A replica asks Ray for `neuron_cores`; the pod offers exactly its planned cores (Ray sets
        # NEURON_RT_VISIBLE_CORES for the actor from this resource). KubeRay 1.7 trims the quotes and parses the
        # JSON (common/pod.go getResourcesMap), then passes it to `ray start` in the shell: single-quoted JSON, the
        # form KubeRay writes itself. (The seeds' '"{\\"neuron_cores\\": 2}"' no longer parses.)
        "rayStartParams": {"resources": "'" + json.dumps({"neuron_cores": plan.tensor_parallel_size}) + "'"},
        "template": {
            # Evicted through the workers' PDB (one at a time), not do-not-disrupt (see components/node_pools.py).
            "metadata": {"labels": {MODEL_LABEL: model.name}, "annotations": {APP_HASH_ANNOTATION: code_hash}},
            "spec": {
                **pod_placement(plan.vendor, model.pool),
                **zone_spread(plan.spread_zones, {"ray.io/group": WORKER_GROUP, MODEL_LABEL: model.name}),
                **cache,
                "containers": [{
                    "name": "ray-worker",
                    "image": versions.NEURON_VLLM_IMAGE,
                    # KubeRay runs these before its own `ray start`: Ray on the workers must be the head's version.
                    "args": [worker_command()],
                    # Relative writes (vllm-neuron's scratch files) land on the sized /data volume, not the image.
                    "workingDir": "/data",
                    "resources": {"requests": res.requests(), "limits": res.limits()},
                    "env": env,
                    "volumeMounts": [mount, {"name": "dshm", "mountPath": "/dev/shm"}, {"name": "data", "mountPath": "/data"}],
                    "securityContext": {"allowPrivilegeEscalation": False},
                }],
                "volumes": [
                    volume,
                    {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{res.shm_mib}Mi"}},
                    # Weights and compiled artifacts (NEURON_COMPILED_ARTIFACTS) on the node's root volume.
                    {"name": "data", "emptyDir": {"sizeLimit": f"{res.ephemeral_storage_gib}Gi"}},
                ],
            },
        },
    }


def ray_service_spec(model: ModelPlan, code_hash: str, bucket: pulumi.Input[str] | None = None) -> dict[str, Any]:
    autoscale = model.autoscaled
    cluster: dict[str, Any] = {
        "rayVersion": versions.RAY_VERSION,
        "enableInTreeAutoscaling": autoscale,
        "headGroupSpec": head_group(model, code_hash),
        "workerGroupSpecs": [worker_group(model, code_hash, bucket)],
    }
    if autoscale:
        cluster["autoscalerOptions"] = {"upscalingMode": "Default", "idleTimeoutSeconds": 600}
    # Changes to the cluster start a new one beside the old and switch traffic when it serves (zero downtime).
    return {"serveConfigV2": serve_config(model), "upgradeStrategy": {"type": "NewCluster"}, "rayClusterConfig": cluster}


@dataclass
class RayServiceArgs:
    model: ModelPlan
    hf_token: pulumi.Input[str]
    provider: k8s.Provider
    node_pool: pulumi.Resource
    operator: pulumi.Resource
    device_plugin: pulumi.Resource
    cache: WeightsAccess | None = None  # the stack's bucket: the Neuron compile cache


class LLMRayService(pulumi.ComponentResource):
    """vLLM on Neuron behind Ray Serve's OpenAI-compatible API; `endpoint` is its in-cluster base URL."""

    endpoint: pulumi.Output[str]

    def __init__(self, name: str, args: RayServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:serving:LLMRayService", name, None, opts)
        model = args.model
        ns = model.namespace
        k8s_opts = dict(parent=self, provider=args.provider)
        namespace, secret = namespace_with_token(name, ns, args.hf_token, pulumi.ResourceOptions(**k8s_opts))
        in_ns = pulumi.ResourceOptions(**k8s_opts, depends_on=[namespace])
        files = app_files()
        code = k8s.core.v1.ConfigMap(
            f"{name}-serve-app", metadata={"name": CONFIG_MAP, "namespace": ns, "labels": {MODEL_LABEL: model.name}},
            data=files, opts=in_ns,
        )
        waits = [code, secret, args.operator, args.node_pool, args.device_plugin]
        bucket = None
        if args.cache is not None:
            cache = CompileCache(f"{name}-compile-cache", ns, compile_cache_prefix(model), args.cache, args.provider,
                                 [namespace], pulumi.ResourceOptions(parent=self))
            waits += cache.ready
            bucket = args.cache.bucket.name
        k8s.apiextensions.CustomResource(
            f"{name}-rayservice", api_version="ray.io/v1", kind="RayService",
            metadata={"name": model.name, "namespace": ns, "labels": {MODEL_LABEL: model.name},
                      "annotations": {"ray.io/initializing-timeout": INITIALIZING_TIMEOUT}},
            spec=ray_service_spec(model, app_hash(files), bucket),
            opts=pulumi.ResourceOptions(**k8s_opts, depends_on=waits),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata={"name": f"{model.name}-workers", "namespace": ns},
            spec=disruption_budget({"ray.io/group": WORKER_GROUP, MODEL_LABEL: model.name}),
            opts=in_ns,
        )
        self.endpoint = pulumi.Output.from_input(model.endpoint)
        self.register_outputs({"endpoint": self.endpoint})
