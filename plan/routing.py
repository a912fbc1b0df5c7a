"""The stack's one OpenAI endpoint, planned: its in-cluster URL, and for every model the router that picks one of
its replicas and the policy it picks with. components/router.py deploys it; the chat UI and plan.json use the URL.

Two tiers, both vllm-router (components/router.py says why): the endpoint sends a request to the router of the
model it names; that model's router picks a replica (cache_aware: the one whose prefix cache holds the prompt).

cache_aware's load bound comes from the plan. vllm-router 0.1.17 follows the prefix tree until the replicas are
"imbalanced": the busiest one's in-flight requests exceed the idlest one's by more than --balance-abs-threshold AND
by --balance-rel-threshold times; then it sends the request to the least-loaded replica. Its default, 64, is for
replicas that batch hundreds of requests: with a replica sized for a few (concurrency_per_replica, what its KV cache
holds), the tree sends every chat sharing a system prompt to one replica, which queues them while the others idle
(`make ab-routing` measured 48 / 0 / 0 requests with the default). The plan's bound: rebalance once following the
prefix would put more than the replica's planned load on it beyond the idlest one's, i.e. abs = C - 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import SERVE_PORT, ModelPlan
from config.names import ROUTER_NAMESPACE

ENDPOINT_SERVICE = "openai"  # the endpoint's Service: http://openai.llm-router.svc.cluster.local:8000/v1
ENDPOINT_PORT = SERVE_PORT  # clients keep vLLM's port
BALANCE_REL_THRESHOLD = 1.5  # vllm-router's default ratio, kept: the absolute bound below is the one that bites


def balance_abs_threshold(concurrency_per_replica: int) -> int:
    """cache_aware's --balance-abs-threshold for replicas sized for C requests at once: C - 1, so that the prefix
    tree may load the replica holding a prompt up to its planned batch beyond the idlest replica, and no further
    (a request beyond it would queue there while another replica has room)."""
    return max(0, concurrency_per_replica - 1)


def policy_args(policy: str, concurrency_per_replica: int) -> list[str]:
    """The router's policy flags: what the model's router runs and what `make ab-routing` measures."""
    args = ["--policy", policy]
    if policy == "cache_aware":
        args += ["--balance-abs-threshold", str(balance_abs_threshold(concurrency_per_replica)),
                 "--balance-rel-threshold", str(BALANCE_REL_THRESHOLD)]
    return args


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
    concurrency_per_replica: int = 1  # the plan's requests at once per replica: cache_aware's load bound

    @property
    def router(self) -> str:
        return f"route-{self.name}"

    @property
    def policy_args(self) -> list[str]:
        return policy_args(self.policy, self.concurrency_per_replica)


@dataclass(frozen=True)
class RouterPlan:
    routes: tuple[Route, ...]
    openai_base_url: str

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(r.model for r in self.routes)


def plan_router(models: list[ModelPlan] | tuple[ModelPlan, ...]) -> RouterPlan:
    routes = tuple(Route(name=m.name, model=m.spec.model, namespace=m.namespace, server=m.server,
                         policy=m.routing_policy, concurrency_per_replica=m.plan.concurrency_per_replica)
                   for m in models)
    return RouterPlan(routes=routes, openai_base_url=openai_base_url())
