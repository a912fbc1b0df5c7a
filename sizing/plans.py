"""What goes into the planner and what comes out: the workload, the deployment plan, the instance types not chosen,
and the search's record of one candidate fleet."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from .architecture import Architecture
from .budget import Budget
from .catalog import InstanceType
from .errors import render
from .pod import HostFit, PodResources
from .rules_of_thumb import RuleOfThumb

HOURS_PER_MONTH = 730  # AWS pricing convention
Vendor = Literal["nvidia", "neuron", "any"]


@dataclass(frozen=True)
class Workload:
    """What the user asks for. Each field but `arch` is a setting described once in sizing/settings.py (its help,
    bounds, stack key and CLI flag); add a field here together with its Setting there.

    concurrency     requests of max_model_len tokens served at once by the whole deployment (all replicas).
    min_replicas,   bounds of the replica count (a stack file's replicas: {min, max}; default 1..1, so one
    max_replicas    replica unless the user allows more). The planner picks the count within them; min 0 (scale
                    to zero) still plans at least one replica to hold the concurrency.
    spread_zones    availability: replicas spread evenly over this many availability zones (topology spread,
                    maxSkew 1); at 2 or more the fleet has at least two replicas on at least two nodes. 1 = no
                    constraint. A prod stack passes its zone count.
    max_hourly_usd  the cap on the whole fleet's $/h (nodes x instance price), not on one instance.
    """

    model: str
    arch: Architecture
    max_model_len: int
    concurrency: int = 1
    vendor: Vendor = "nvidia"
    instance_type: str | None = None
    tensor_parallel_size: int | None = None
    max_hourly_usd: float | None = None
    dtype: str = "auto"
    kv_cache_dtype: str = "auto"
    quantization: str | None = None
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None  # a cap on one replica's batch; None: vLLM's default, raised to the share
    vllm_version: str | None = None
    min_replicas: int = 1
    max_replicas: int = 1
    spread_zones: int = 1
    input_tokens: int | None = None  # the load and the latency target (sizing/slo.py); all None: memory only
    output_tokens: int | None = None
    requests_per_second: float | None = None
    ttft_p90_ms: float | None = None
    itl_ms: float | None = None


@dataclass(frozen=True)
class Rejection:
    """An instance type that was not chosen, and why (`template` names settings as «key»; `reason` is it in the
    stack file's words, `render(names)` in any front end's)."""

    instance_type: str
    hourly_usd: float
    template: str
    shortfall_gib: float = 0.0

    @property
    def reason(self) -> str:
        return render(self.template)

    def render(self, names: dict[str, str] | None = None) -> str:
        return render(self.template, names)


@dataclass(frozen=True)
class DeploymentPlan:
    model: str
    model_type: str
    parameters: int
    instance_type: str
    accelerator: str
    accelerator_name: str
    vendor: str  # nvidia | neuron
    accelerators_per_node: int
    accelerators: int  # per replica (pod)
    replicas_per_node: int  # as many as the node's accelerators and memory hold
    tensor_parallel_size: int
    vllm_version: str
    max_model_len: int
    max_num_seqs: int  # per replica
    concurrency: int  # the whole deployment's
    dtype: str
    kv_cache_dtype: str
    gpu_memory_utilization: float | None
    quantization: str | None  # the weight format asked for (fp8, int8, int4) or None
    engine_args: tuple[str, ...]
    resources: PodResources
    host_memory_needed_gib: float
    checkpoint_gib: float
    node_disk_gib: int
    hourly_usd: float  # ONE instance of instance_type; the fleet's is fleet_hourly_usd
    memory: Budget  # one replica's budget (per GPU / per NeuronCore)
    rejected: tuple[Rejection, ...]
    explanation_template: str
    rules_of_thumb: tuple[RuleOfThumb, ...] = field(default=())
    replicas: int = 1  # replicas that hold `concurrency` (>= min_replicas); a Deployment's replica count
    nodes: int = 1  # nodes those replicas need (replicas_per_node a node, spread over spread_zones)
    fleet_hourly_usd: float = 0.0  # nodes x hourly_usd
    concurrency_per_replica: int = 1  # ceil(concurrency / replicas): what each replica's KV cache holds
    min_replicas: int = 1
    max_replicas: int = 1
    spread_zones: int = 1
    pinned: bool = False  # instance type set by the user, not chosen
    cheapest_alternative: str | None = None  # pinned: what the planner would choose instead, if cheaper
    weight_format: str = ""  # what the weights are in memory (the checkpoint's format, or on-the-fly fp8)
    vllm_quantization: str | None = None  # the --quantization value passed to vLLM, if any
    utilization_note: str | None = None  # why gpu_memory_utilization differs from vLLM's default
    performance: dict | None = None  # predicted latency, throughput and $ per million tokens (sizing/slo.py)

    @property
    def explanation(self) -> str:
        return render(self.explanation_template)

    def explain(self, names: dict[str, str] | None = None) -> str:
        return render(self.explanation_template, names)

    @property
    def monthly_usd(self) -> float:
        """One instance, a month."""
        return self.hourly_usd * HOURS_PER_MONTH

    @property
    def fleet_monthly_usd(self) -> float:
        return self.fleet_hourly_usd * HOURS_PER_MONTH

    @property
    def workload_gib(self) -> float:
        """Accelerator memory one replica needs by vLLM's accounting, over all its ranks: weights, activation,
        non-torch memory and the KV cache of its share of full-length requests (the rules of thumb's scope)."""
        return self.memory.replica_gib(self.concurrency_per_replica)

    def to_dict(self, names: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_type": self.model_type,
            "parameters": self.parameters,
            "instance_type": self.instance_type,
            "pinned": self.pinned,
            "accelerator": self.accelerator,
            "vendor": self.vendor,
            "accelerators": self.accelerators,
            "accelerators_per_node": self.accelerators_per_node,
            "replicas_per_node": self.replicas_per_node,
            "replicas": self.replicas,
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "spread_zones": self.spread_zones,
            "nodes": self.nodes,
            "tensor_parallel_size": self.tensor_parallel_size,
            "vllm_version": self.vllm_version,
            "max_model_len": self.max_model_len,
            "max_num_seqs": self.max_num_seqs,
            "concurrency": self.concurrency,
            "concurrency_per_replica": self.concurrency_per_replica,
            "weight_format": self.weight_format,
            "vllm_quantization": self.vllm_quantization,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "utilization_note": render(self.utilization_note, names) if self.utilization_note else None,
            "hourly_usd": round(self.hourly_usd, 4),
            "monthly_usd": round(self.monthly_usd, 2),
            "fleet_hourly_usd": round(self.fleet_hourly_usd, 4),
            "fleet_monthly_usd": round(self.fleet_monthly_usd, 2),
            "cheapest_alternative": render(self.cheapest_alternative, names) if self.cheapest_alternative else None,
            "engine_args": list(self.engine_args),
            "resources": self.resources.to_dict(),
            "host_memory_needed_gib": round(self.host_memory_needed_gib, 2),
            "checkpoint_gib": round(self.checkpoint_gib, 2),
            "node_disk_gib": self.node_disk_gib,
            "memory": self.memory.to_dict(),
            "rejected": [
                {"instance_type": r.instance_type, "hourly_usd": r.hourly_usd, "reason": r.render(names)}
                for r in self.rejected
            ],
            "explanation": self.explain(names),
            "performance": self.performance,
            "workload_gib": round(self.workload_gib, 2),
            "rules_of_thumb": [
                {"name": r.name, "formula": r.formula, "total_gib": round(r.total_gib, 2),
                 "difference_gib": round(r.total_gib - self.workload_gib, 2),
                 "kv_bytes_per_token": r.kv_bytes_per_token} for r in self.rules_of_thumb
            ],
        }


# --- the search's record -----------------------------------------------------------------------------------------


@dataclass
class Option:
    """One instance type at one tensor-parallel degree: the fewest replicas that hold the workload on it."""

    instance: InstanceType
    tp: int
    problem: str | None  # why no fleet of it holds the workload (None: `replicas` do)
    shortfall_gib: float = math.inf  # how much more memory per accelerator one replica lacks (ranking "closest")
    budget: Budget | None = None  # at `share` (or at the smallest share tried, when infeasible)
    host: HostFit | None = None  # the pod on this instance at this degree
    replicas: int = 0  # may exceed max_replicas: then only `problem` says so
    share: int = 0
    nodes: int = 0
    cost: float = math.inf
    outcome: Any = None  # sizing/slo.py Outcome at `replicas`, when the workload gives a load
    binding: str = "memory"  # the bound that set `replicas`: memory, throughput, ITL, TTFT

    @property
    def slots(self) -> int:
        """Replicas a node holds."""
        return self.host.slots if self.host else 1
