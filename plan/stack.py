"""The whole stack planned once, before any resource exists: every model (plan/models.py), and what follows for the
stack: which accelerator vendors and operators it needs, the node classes and their disks, the one OpenAI endpoint
(plan/routing.py) and what the chat UI serves through it,
and the cost estimate the preview prints. `__main__.py` only wires components to this.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.loader import ConfigError
from config.schema import PROJECT, StackConfig

from .cost import Cost, monthly_cost
from .models import ModelPlan, plan_models
from config.names import CPU_POOL
from .routing import RouterPlan, plan_router

CPU_DISK_GIB = 50  # the CPU pool's nodes: OS, the UI and Ray head images, no weights


# How long the chat UI waits for one reply once a replica serves (the Gradio app's read timeout since it was written;
# Open WebUI sets none by default, backend/open_webui/env.py AIOHTTP_CLIENT_TIMEOUT "" -> None).
REPLY_TIMEOUT_S = 300

@dataclass(frozen=True)
class ChatTarget:
    """A model the chat UI offers: its OpenAI base URL (the stack's one endpoint) and the model id clients send."""

    endpoint: str
    model: str
    timeout_s: int  # one reply's read timeout: REPLY_TIMEOUT_S, plus the wake-up where the model scales to zero


@dataclass(frozen=True)
class StackPlan:
    config: StackConfig
    models: tuple[ModelPlan, ...]
    vendors: frozenset[str]  # accelerator vendors in use: nvidia, neuron
    node_class_disks: dict[str, int]  # EC2NodeClass name -> root volume GiB (the largest plan that uses it)
    chat_targets: tuple[ChatTarget, ...]
    router: RouterPlan  # the one OpenAI endpoint every model is behind
    nat_gateways: int
    cost: Cost

    @property
    def needs_kuberay(self) -> bool:
        return any(m.server == "rayserve" for m in self.models)


def _chat_targets(config: StackConfig, models: list[ModelPlan], router: RouterPlan) -> tuple[ChatTarget, ...]:
    kind = config.chat_ui.kind
    if kind == "none":
        return ()
    if kind == "gradio" and len(models) > 1:
        # The Gradio app talks to one model; serving only the first one of several would hide the others.
        raise ConfigError(f"{PROJECT}:chatUi.kind: gradio serves one model and this stack serves {len(models)} "
                          f"({', '.join(m.name for m in models)}); use open-webui, which lists them all")
    return tuple(ChatTarget(router.openai_base_url, m.spec.model, m.client_timeout_s(REPLY_TIMEOUT_S)) for m in models)


def plan_stack(config: StackConfig) -> StackPlan:
    """Every model placed, or one line naming the key, before any resource is registered."""
    models = plan_models(config)
    vendors = frozenset(m.plan.vendor for m in models)
    disks = {CPU_POOL: CPU_DISK_GIB}
    for vendor in sorted(vendors):
        disks[vendor] = max(m.plan.node_disk_gib for m in models if m.plan.vendor == vendor)
    net = config.network
    zones = len(net.zone_ids) if net.zone_ids else net.availability_zones
    nat = zones if net.nat_gateways == "onePerAz" else 1
    router = plan_router(models)
    return StackPlan(config=config, models=tuple(models), vendors=vendors, node_class_disks=disks,
                     chat_targets=_chat_targets(config, models, router), router=router, nat_gateways=nat,
                     cost=monthly_cost(config, models, nat))
