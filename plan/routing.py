"""The stack's one OpenAI endpoint, planned: its in-cluster URL, and for every model the router that picks one of
its replicas and the policy it picks with. components/router.py deploys it; the chat UI and plan.json use the URL.

Two tiers, both vllm-router (components/router.py says why): the endpoint sends a request to the router of the
model it names; that model's router picks a replica (cache_aware: the one whose prefix cache holds the prompt).
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import SERVE_PORT, ModelPlan
from config.names import ROUTER_NAMESPACE

ENDPOINT_SERVICE = "openai"  # the endpoint's Service: http://openai.llm-router.svc.cluster.local:8000/v1
ENDPOINT_PORT = SERVE_PORT  # clients keep vLLM's port


def openai_base_url() -> str:
    """The stack's OpenAI base URL inside the cluster: every model behind it."""
    return f"http://{ENDPOINT_SERVICE}.{ROUTER_NAMESPACE}.svc.cluster.local:{ENDPOINT_PORT}/v1"


@dataclass(frozen=True)
class Route:
    """One model behind the endpoint: the id clients send (vLLM's served model name), where its replicas run, and
    how its router picks one."""

    name: str  # the stack's model name (its namespace, and its router's name)
    model: str  # the OpenAI model id: the Hugging Face id the server serves under
    namespace: str
    server: str  # vllm | rayserve: which pods the router discovers
    policy: str

    @property
    def router(self) -> str:
        return f"route-{self.name}"


@dataclass(frozen=True)
class RouterPlan:
    routes: tuple[Route, ...]
    openai_base_url: str

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(r.model for r in self.routes)


def plan_router(models: list[ModelPlan] | tuple[ModelPlan, ...]) -> RouterPlan:
    routes = tuple(Route(name=m.name, model=m.spec.model, namespace=m.namespace, server=m.server,
                         policy=m.routing_policy) for m in models)
    return RouterPlan(routes=routes, openai_base_url=openai_base_url())
