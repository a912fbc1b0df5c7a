"""The stack's cost estimate at the planned replicas, from the plan and the dated prices in sizing/data (the preview
prints it; plan.json records it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from config.schema import StackConfig
from sizing import catalog
from sizing.planner import HOURS_PER_MONTH, fleet_nodes

from .cold_start import rates

if TYPE_CHECKING:
    from .models import ModelPlan


@dataclass
class CostLine:
    item: str
    detail: str
    hourly_usd: float

    @property
    def monthly_usd(self) -> float:
        return self.hourly_usd * HOURS_PER_MONTH


@dataclass
class Cost:
    lines: list[CostLine]
    notes: list[str]

    @property
    def hourly_usd(self) -> float:
        return sum(line.hourly_usd for line in self.lines)

    @property
    def monthly_usd(self) -> float:
        return self.hourly_usd * HOURS_PER_MONTH

    def to_dict(self) -> dict[str, Any]:
        return {
            "hourly_usd": round(self.hourly_usd, 4), "monthly_usd": round(self.monthly_usd, 2),
            "lines": [{"item": line.item, "detail": line.detail, "hourly_usd": round(line.hourly_usd, 4),
                       "monthly_usd": round(line.monthly_usd, 2)} for line in self.lines],
            "notes": self.notes, "prices_as_of": catalog.prices_as_of(), "hours_per_month": HOURS_PER_MONTH,
        }


def _fees() -> dict[str, Any]:
    with open(catalog.DATA / "aws_fees.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def monthly_cost(config: StackConfig, plans: "list[ModelPlan]", nat_gateways: int) -> Cost:
    """At the minimum replica count: what the stack costs while idle but serving."""
    fees, lines, notes = _fees(), [], []
    gp3 = fees["gp3_gb_month"] / HOURS_PER_MONTH
    for p in plans:
        nodes = p.plan.nodes  # the planned fleet: the replicas that hold the stack's concurrency
        lines.append(CostLine(f"{p.name} nodes", f"{nodes} x {p.plan.instance_type} ({p.plan.replicas} replica(s), "
                              f"{p.plan.replicas_per_node} per node)", p.plan.fleet_hourly_usd))
        # the accelerator node classes provision root-volume throughput for the parallel image pull
        mib_s = rates()["parallel_pull"]["root_volume_throughput_mib_s"]["value"]
        throughput = (mib_s - fees["gp3_included_throughput_mib_s"]) * fees["gp3_throughput_mib_s_month"] / HOURS_PER_MONTH
        lines.append(CostLine(f"{p.name} node disks", f"{nodes} x {p.plan.node_disk_gib} GiB gp3, {mib_s} MiB/s",
                              nodes * (p.plan.node_disk_gib * gp3 + throughput)))
        if p.spec.replicas.max > p.plan.replicas:
            top = fleet_nodes(p.spec.replicas.max, p.plan.replicas_per_node, p.plan.spread_zones) * p.plan.hourly_usd
            notes.append(f"{p.name} at {p.spec.replicas.max} replicas: ${top:.2f}/h for its nodes")
        if p.scales_to_zero:
            notes.append(f"{p.name} scales to zero: its nodes and disks cost nothing while it sleeps (these lines are "
                         "one replica, awake)")
    sys_nodes = config.system_nodes
    sys_type = sys_nodes.instance_types[0]
    price = fees["instances"].get(sys_type)
    if price is None:
        notes.append(f"no price on file for system node type {sys_type}; not counted")
        price = 0.0
    lines.append(CostLine("system nodes", f"{sys_nodes.desired_size} x {sys_type}", sys_nodes.desired_size * price))
    lines.append(CostLine("system node disks", f"{sys_nodes.desired_size} x {sys_nodes.disk_gib} GiB gp3",
                          sys_nodes.desired_size * sys_nodes.disk_gib * gp3))
    lines.append(CostLine("EKS control plane", "standard support", fees["eks_cluster_hour"]))
    lines.append(CostLine("NAT gateways", f"{nat_gateways} x (gateway + public IPv4), data processing extra",
                          nat_gateways * (fees["nat_gateway_hour"] + fees["public_ipv4_hour"])))
    # The CPU pool runs the chat UI and, for Ray Serve models, the Ray head (2 CPU, 8 GiB: an m7i.xlarge's worth).
    ray = any(p.server == "rayserve" for p in plans)
    if ray or config.chat_ui.kind != "none":
        size = "m7i.xlarge" if ray else "m7i.large"
        uses = " and ".join(u for u in ("the Ray head" if ray else "", f"the {config.chat_ui.kind} UI"
                                        if config.chat_ui.kind != "none" else "") if u)
        lines.append(CostLine("CPU pool", f"~1 x {size} for {uses} (Karpenter picks the cheapest fit)",
                              fees["instances"][size]))
    notes.append(f"NAT data processing ${fees['nat_gateway_gb']}/GB: model downloads from Hugging Face pass through NAT")
    return Cost(lines, notes)
