"""The project's Gradio chat app (chat_ui/gradio_app.py) on the CPU pool, talking to one model's OpenAI API.

No image of our own to build and push: a pinned Python image installs the pinned Gradio and OpenAI client at start
and runs the app from a ConfigMap. The app's variables come from chat_ui/settings.py (the names the app reads), and
the code's hash sits on the pod template, so a change to the app rolls the pod (a Deployment ignores ConfigMap edits).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from chat_ui.settings import Settings, to_env
from config.names import CHAT_UI_NAMESPACE
from plan.stack import ChatTarget

from . import versions
from .app_code import code_hash, read_files
from .scheduling import cpu_placement

NAMESPACE = CHAT_UI_NAMESPACE
APP_ROOT = "/opt/llm-eks"
PORT = 7860
SOURCE = Path(__file__).resolve().parents[1] / "chat_ui"
LABELS = {"app.kubernetes.io/name": "gradio-chat"}
APP_HASH_ANNOTATION = "llm-eks/chat-app-sha256"


def app_files() -> dict[str, str]:
    """Every module of chat_ui/ (the app and the settings it shares with this component)."""
    return read_files(SOURCE, (".py",))


def deployment_spec(base_url: str, model: str, title: str, files: dict[str, str], timeout_s: int = 300) -> dict[str, Any]:
    install = (f"pip install --no-cache-dir --disable-pip-version-check gradio=={versions.GRADIO_VERSION} "
               f"openai=={versions.OPENAI_CLIENT_VERSION}")
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 5}
    # All interfaces in the pod, so the Service reaches it (a local run binds loopback).
    settings = Settings(base_url=base_url, model=model, title=title, server_name="0.0.0.0", server_port=PORT,
                        timeout_s=timeout_s)
    return {
        "replicas": 1,
        "selector": {"matchLabels": LABELS},
        "template": {
            "metadata": {"labels": LABELS, "annotations": {APP_HASH_ANNOTATION: code_hash(files)}},
            "spec": {
                **cpu_placement(),
                "automountServiceAccountToken": False,
                "containers": [{
                    "name": "gradio",
                    "image": versions.GRADIO_PYTHON_IMAGE,
                    "command": ["sh", "-c", f"{install} && exec python -c 'from chat_ui.gradio_app import main; main()'"],
                    "env": [
                        {"name": "PYTHONPATH", "value": APP_ROOT},
                        *({"name": k, "value": v} for k, v in to_env(settings).items()),
                        {"name": "GRADIO_ANALYTICS_ENABLED", "value": "False"},
                    ],
                    "ports": [{"name": "http", "containerPort": PORT}],
                    "startupProbe": {**probe, "failureThreshold": 60},  # pip install first
                    "readinessProbe": {**probe, "failureThreshold": 3},
                    "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
                    "securityContext": {"allowPrivilegeEscalation": False},
                    "volumeMounts": [{"name": "app", "mountPath": f"{APP_ROOT}/chat_ui", "readOnly": True}],
                }],
                "volumes": [{"name": "app", "configMap": {"name": "gradio-app"}}],
            },
        },
    }


class GradioChat(pulumi.ComponentResource):
    def __init__(self, name: str, target: ChatTarget, provider: k8s.Provider, depends_on: list[pulumi.Resource],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:ui:GradioChat", name, None, opts)
        k8s_opts = dict(parent=self, provider=provider)
        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "baseline"}},
                                   opts=pulumi.ResourceOptions(**k8s_opts))
        in_ns = pulumi.ResourceOptions(**k8s_opts, depends_on=[ns])
        files = app_files()
        code = k8s.core.v1.ConfigMap(f"{name}-app", metadata={"name": "gradio-app", "namespace": NAMESPACE},
                                     data=files, opts=in_ns)
        k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata={"name": "gradio-chat", "namespace": NAMESPACE, "labels": LABELS},
            spec=deployment_spec(target.endpoint, target.model, f"{target.model} on llm-eks", files, target.timeout_s),
            opts=pulumi.ResourceOptions(**k8s_opts, depends_on=[ns, code, *depends_on]),
        )
        k8s.core.v1.Service(
            f"{name}-service", metadata={"name": "gradio-chat", "namespace": NAMESPACE, "labels": LABELS},
            spec={"type": "ClusterIP", "selector": LABELS, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
            opts=in_ns,
        )
        self.url = f"http://gradio-chat.{NAMESPACE}.svc.cluster.local"
        self.register_outputs({})
