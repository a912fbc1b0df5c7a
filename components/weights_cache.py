"""The stack's S3 weights cache (issue 18): one private, encrypted bucket per stack, destroyed with it; per cached
model a fill Job that copies its revision from the Hub once (weights_cache/fill.py), and Pod Identity roles that let
the fill Job write and the server read that model's prefix, nothing more.

Why a Job the Deployment waits for, not an init container: the fill runs once per revision on a cheap CPU node
instead of on every GPU replica's start (an init container would hold a GPU node while it downloads from the Hub, and
again at each wake-up from zero); Pulumi creates the Deployment only after the Job completed, so the first server
finds the whole revision (the marker is written last). The Job is named after the revision's prefix: a new revision is
a new Job, an unchanged one is never re-run. A retry (backoffLimit) resumes: objects already there are skipped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from plan.models import ModelPlan
from plan.weights import BUCKET_ENV

from . import iam, versions
from .app_code import code_hash
from .model_namespace import token_env
from .scheduling import cpu_placement

SERVER_SERVICE_ACCOUNT = "vllm-server"  # the model server's pods: read the model's prefix
COMPILE_SERVICE_ACCOUNT = "ray-worker"  # Neuron Ray workers: read and write their compiled model's prefix
FILL_SERVICE_ACCOUNT = "weights-fill"  # the fill Job's pods: write the model's prefix
APP_ROOT = "/opt/llm-eks"
SOURCE = Path(__file__).resolve().parents[1] / "weights_cache"
FILL_DEADLINE_SECONDS = 3 * 3600  # a 140 GB checkpoint at ~20 MB/s from the Hub; a retry resumes
FILL_RETRIES = 4


def fill_files() -> dict[str, str]:
    return {"fill.py": (SOURCE / "fill.py").read_text(encoding="utf-8")}


def reader_policy(bucket_arn: str, prefix: str) -> dict[str, Any]:
    """The server's: get objects under the prefix and list only that prefix (vLLM lists the safetensors)."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadModel", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{bucket_arn}/{prefix}/*"]},
        {"Sid": "ListModel", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [bucket_arn],
         "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}},
    ]}


def writer_policy(bucket_arn: str, prefix: str) -> dict[str, Any]:
    """The fill Job's: the reader's rights plus writing (multipart included) under the prefix; no delete."""
    doc = reader_policy(bucket_arn, prefix)
    doc["Statement"].append({"Sid": "WriteModel", "Effect": "Allow",
                             "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                             "Resource": [f"{bucket_arn}/{prefix}/*"]})
    return doc


def tls_only_policy(bucket_arn: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


def fill_job_name(model: ModelPlan) -> str:
    return f"fill-{hashlib.sha256(model.weights.prefix.encode()).hexdigest()[:10]}"


def fill_job_spec(model: ModelPlan, files: dict[str, str]) -> dict[str, Any]:
    w = model.weights
    install = (f"pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore "
               f"boto3=={versions.FILL_BOTO3_VERSION}")
    fill = (f"python {APP_ROOT}/fill.py --repo-id {w.model} --revision {w.revision} "
            f"--bucket \"$({BUCKET_ENV})\" --prefix {w.prefix}")
    return {
        "backoffLimit": FILL_RETRIES,
        "activeDeadlineSeconds": FILL_DEADLINE_SECONDS,
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": "weights-fill"},
                         "annotations": {"llm-eks/fill-code-sha256": code_hash(files)}},
            "spec": {
                **cpu_placement(),
                "serviceAccountName": FILL_SERVICE_ACCOUNT,
                "automountServiceAccountToken": False,  # Pod Identity mounts its own token; no Kubernetes API needed
                "restartPolicy": "Never",
                "containers": [{
                    "name": "fill",
                    "image": versions.FILL_PYTHON_IMAGE,
                    "command": ["sh", "-c", f"{install} && exec {fill}"],
                    "env": [token_env(), {"name": BUCKET_ENV, "value": "__bucket__"}],
                    # Files stream from the Hub into multipart uploads: no disk; memory for a few 64 MiB parts.
                    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
                    "securityContext": {"allowPrivilegeEscalation": False},
                    "volumeMounts": [{"name": "app", "mountPath": APP_ROOT, "readOnly": True}],
                }],
                "volumes": [{"name": "app", "configMap": {"name": "weights-fill"}}],
            },
        },
    }


def _with_bucket(spec: dict[str, Any], bucket: pulumi.Input[str]) -> dict[str, Any]:
    env = spec["template"]["spec"]["containers"][0]["env"]
    env[[e["name"] for e in env].index(BUCKET_ENV)] = {"name": BUCKET_ENV, "value": bucket}
    return spec


class WeightsBucket(pulumi.ComponentResource):
    """The stack's bucket: SSE-S3, every public access blocked, bucket-owner-enforced (no ACLs), TLS only, stale
    multipart uploads aborted after a day, and force_destroy so `pulumi destroy` empties and removes it."""

    name: pulumi.Output[str]
    arn: pulumi.Output[str]

    def __init__(self, name: str, tags: dict[str, str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:storage:WeightsBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(name, bucket_prefix="llm-eks-weights-", force_destroy=True, tags=tags, opts=child)
        on_bucket = pulumi.ResourceOptions(parent=self, depends_on=[bucket])
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse", bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}, "bucket_key_enabled": True}],
            opts=on_bucket)
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=on_bucket)
        aws.s3.BucketOwnershipControls(f"{name}-ownership", bucket=bucket.id,
                                       rule={"object_ownership": "BucketOwnerEnforced"}, opts=on_bucket)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle", bucket=bucket.id,
            rules=[{"id": "abort-incomplete-uploads", "status": "Enabled", "filter": {},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1}}],
            opts=on_bucket)
        aws.s3.BucketPolicy(f"{name}-tls-only", bucket=bucket.id,
                            policy=bucket.arn.apply(lambda arn: json.dumps(tls_only_policy(arn))),
                            opts=pulumi.ResourceOptions(parent=self, depends_on=[bucket, block]))
        self.name, self.arn = bucket.bucket, bucket.arn
        self.register_outputs({"name": self.name, "arn": self.arn})


@dataclass
class WeightsAccess:
    """What a model server needs of the stack's weights cache: the bucket, and the cluster its roles associate with."""

    bucket: WeightsBucket
    cluster_name: str
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # the cluster and its Pod Identity agent
    tags: dict[str, str] = field(default_factory=dict)


def _role(name: str, access: WeightsAccess, namespace: str, service_account: str, document,
          opts: pulumi.ResourceOptions) -> aws.eks.PodIdentityAssociation:
    role = aws.iam.Role(name, assume_role_policy=iam.POD_IDENTITY_TRUST, tags=access.tags, opts=opts)
    policy = aws.iam.RolePolicy(name, role=role.id, policy=access.bucket.arn.apply(lambda a: json.dumps(document(a))),
                                opts=opts)
    return aws.eks.PodIdentityAssociation(
        name, cluster_name=access.cluster_name, namespace=namespace, service_account=service_account,
        role_arn=role.arn, tags=access.tags,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[policy, *access.depends_on])))


class CompileCache(pulumi.ComponentResource):
    """A Neuron model's compiled-model prefix in the stack's bucket: the Ray workers' service account and its role,
    which may read and write that prefix only (serving/compile_cache.py restores and saves it)."""

    def __init__(self, name: str, namespace: str, prefix: str, access: WeightsAccess, provider: k8s.Provider,
                 depends_on: list[pulumi.Resource], opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:storage:CompileCache", name, None, opts)
        account = k8s.core.v1.ServiceAccount(
            f"{name}-{COMPILE_SERVICE_ACCOUNT}", metadata={"name": COMPILE_SERVICE_ACCOUNT, "namespace": namespace},
            automount_service_account_token=False,
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=depends_on))
        role = _role(f"{name}-compile", access, namespace, COMPILE_SERVICE_ACCOUNT,
                     lambda a: writer_policy(a, prefix), pulumi.ResourceOptions(parent=self))
        self.ready: list[pulumi.Resource] = [account, role]
        self.register_outputs({})


class ModelWeights(pulumi.ComponentResource):
    """One model revision in the cache: the server's and the fill Job's service accounts and roles, and the fill Job.
    `ready` is what the server's Deployment waits for."""

    def __init__(self, name: str, model: ModelPlan, access: WeightsAccess, provider: k8s.Provider,
                 depends_on: list[pulumi.Resource], opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:storage:ModelWeights", name, None, opts)
        ns, prefix = model.namespace, model.weights.prefix
        aws_opts = pulumi.ResourceOptions(parent=self)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=depends_on)
        accounts = {sa: k8s.core.v1.ServiceAccount(f"{name}-{sa}", metadata={"name": sa, "namespace": ns},
                                                   automount_service_account_token=False, opts=k8s_opts)
                    for sa in (SERVER_SERVICE_ACCOUNT, FILL_SERVICE_ACCOUNT)}
        server = _role(f"{name}-server", access, ns, SERVER_SERVICE_ACCOUNT, lambda a: reader_policy(a, prefix), aws_opts)
        filler = _role(f"{name}-fill", access, ns, FILL_SERVICE_ACCOUNT, lambda a: writer_policy(a, prefix), aws_opts)
        files = fill_files()
        code = k8s.core.v1.ConfigMap(f"{name}-fill-code", metadata={"name": "weights-fill", "namespace": ns},
                                     data=files, opts=k8s_opts)
        # Pulumi waits for the Job's Complete condition and fails on Failed (pulumi-kubernetes' Job await logic).
        # replaceUnready: a Job that failed (its retries spent) is replaced by the next `pulumi up`, not awaited again,
        # and the new one resumes where it stopped; same name, so the old one goes first.
        job = k8s.batch.v1.Job(
            f"{name}-fill", metadata={"name": fill_job_name(model), "namespace": ns,
                                      "labels": {"app.kubernetes.io/name": "weights-fill"},
                                      "annotations": {"pulumi.com/replaceUnready": "true"}},
            spec=_with_bucket(fill_job_spec(model, files), access.bucket.name),
            opts=pulumi.ResourceOptions(
                parent=self, provider=provider, depends_on=[*depends_on, code, filler, *accounts.values()],
                delete_before_replace=True,
                custom_timeouts=pulumi.CustomTimeouts(create=f"{FILL_DEADLINE_SECONDS // 60 + 10}m")),
        )
        self.ready: list[pulumi.Resource] = [job, server, accounts[SERVER_SERVICE_ACCOUNT]]
        self.register_outputs({})
