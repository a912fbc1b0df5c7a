"""The in-cluster benchmark: a ConfigMap with inference-perf's config and a Job that runs it, in the model's namespace.

In the cluster the generator reaches the Service directly (no laptop port-forward in the measurement). It runs on
the CPU NodePool, never on the accelerator node it measures. Its report comes back through `kubectl logs`: inference-
perf prints each stage's JSON between markers (bench/results.py), so the Job needs no volume, bucket or credentials
beyond the model namespace's Hugging Face token (for the tokenizer of a gated model).
"""

from __future__ import annotations

from typing import Any

import yaml

from components.scheduling import cpu_placement
from config.names import MODEL_LABEL, TOKEN_KEY, TOKEN_SECRET

from .workload import INFERENCE_PERF_IMAGE, INFERENCE_PERF_VERSION

CONFIG_DIR = "/etc/inference-perf"
LABELS = {"app.kubernetes.io/name": "llm-eks-bench", "app.kubernetes.io/component": "benchmark"}


def job_name(model: str) -> str:
    return f"bench-{model}"[:63].rstrip("-")


def manifests(model: str, config: dict[str, Any], *, timeout_s: int) -> list[dict[str, Any]]:
    """ConfigMap + Job for one model. `timeout_s` becomes the Job's activeDeadlineSeconds."""
    name = job_name(model)
    labels = {**LABELS, MODEL_LABEL: model}
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": model, "labels": labels},
        "data": {"config.yaml": yaml.safe_dump(config, sort_keys=False)},
    }
    container = {
        "name": "inference-perf",
        "image": INFERENCE_PERF_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["inference-perf", "--config_file", f"{CONFIG_DIR}/config.yaml"],
        "workingDir": "/tmp",
        "env": [
            # The model namespace's token Secret, optional so a stack without a gated model still benchmarks.
            {"name": TOKEN_KEY, "valueFrom": {"secretKeyRef": {"name": TOKEN_SECRET, "key": TOKEN_KEY, "optional": True}}},
            {"name": "HF_HOME", "value": "/tmp/hf"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                         {"name": "scratch", "mountPath": "/tmp"}],
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": model, "labels": labels,
                     "annotations": {"llm-eks/generator": f"inference-perf {INFERENCE_PERF_VERSION}"}},
        "spec": {
            "backoffLimit": 0,  # a failed benchmark is reported, not silently re-run with different numbers
            "activeDeadlineSeconds": timeout_s,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    **cpu_placement(),  # never on the accelerator node it measures
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": name}},
                                {"name": "scratch", "emptyDir": {}}],
                },
            },
        },
    }
    return [configmap, job]


class _Dumper(yaml.SafeDumper):
    """No anchors for repeated dicts; multi-line strings (the config) as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _str)


def to_yaml(docs: list[dict[str, Any]]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False)
