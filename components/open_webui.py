"""Open WebUI (pinned chart and image) as the chat UI, pointed at the stack's one OpenAI endpoint (every model).

The chart's defaults would also run Ollama, Pipelines and a Redis: the models are served by vLLM or Ray Serve, and one
replica needs no Redis, so all three are off. Chats and users persist on an encrypted gp3 volume.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from . import helm, versions
from config.names import CHAT_UI_NAMESPACE, STORAGE_CLASS
from plan.stack import ChatTarget

from .scheduling import cpu_placement

NAMESPACE = CHAT_UI_NAMESPACE


def open_webui_values(endpoints: list[str], timeout_s: int) -> dict:
    """`timeout_s`: Open WebUI's timeout for a model's reply (AIOHTTP_CLIENT_TIMEOUT; unset, it waits forever), the
    longest of its targets' (a model that scales to zero may first have to wake)."""
    return {
        "extraEnvVars": [{"name": "AIOHTTP_CLIENT_TIMEOUT", "value": str(timeout_s)}],
        "image": {"tag": versions.OPEN_WEBUI_IMAGE_TAG},
        "ollama": {"enabled": False},
        "pipelines": {"enabled": False},
        "websocket": {"manager": "", "redis": {"enabled": False}},
        "openaiBaseApiUrls": endpoints,
        # The in-cluster servers take no API key; Open WebUI requires one value per URL.
        "openaiApiKeys": ["EMPTY"] * len(endpoints),
        "persistence": {"enabled": True, "size": "2Gi", "storageClass": STORAGE_CLASS},
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        **cpu_placement(),
    }


class OpenWebUI(pulumi.ComponentResource):
    def __init__(self, name: str, targets: tuple[ChatTarget, ...], provider: k8s.Provider,
                 depends_on: list[pulumi.Resource], opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:ui:OpenWebUI", name, None, opts)
        self.release = helm.release(
            f"{name}-release", "open-webui", versions.OPEN_WEBUI, NAMESPACE,
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=depends_on),
            values=open_webui_values(list(dict.fromkeys(t.endpoint for t in targets)),
                                     max(t.timeout_s for t in targets)), create_namespace=True,
            timeout_seconds=helm.NEW_NODE_SECONDS,  # a CPU node from Karpenter, a gp3 volume, a large image
        )
        self.url = f"http://open-webui.{NAMESPACE}.svc.cluster.local"
        self.register_outputs({})
