"""The planner: a workload in, the cheapest fleet that holds it out, with engine arguments and pod resources.

`concurrency` is the number of requests of `max_model_len` tokens served at once by the whole deployment. For
every candidate instance type and tensor-parallel degree (GPU: a power of two that splits the heads; Neuron: a
supported degree that divides the heads), the planner finds the fewest replicas, within the replica bounds, whose
per-replica share of the users fits vLLM's own budget of one replica; replicas share a node as far as its
accelerators, CPU and memory allow (`replicas_per_node`), and spread evenly over `spread_zones` zones. A candidate
also has to pass the host checks: the pod's CPU and memory requests fit the node's allocatable less DaemonSets,
host memory holds the weights while loading (Neuron: while compiling), and a bfloat16 checkpoint is not silently
run in float16. The fleet with the lowest total $/h wins (ties: fewer replicas, then the cheaper instance, then
the smaller TP); every instance type that costs less per hour than the chosen fleet is listed with the reason it
was not chosen. When nothing fits, the error names the binding constraint (the price cap, the replica bound, a
pinned instance type or tensor-parallel degree, the context length) and the settings that would change it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal

import yaml

from . import catalog
from .architecture import Architecture
from .catalog import GIB, InstanceType
from .errors import SizingError, key, render
from .memory import DTYPES, KV_CACHE_DTYPES, GpuBudget, check_context, check_tensor_parallel, facts_for, gpu_budget
from .neuron import NeuronBudget, check_neuron_tp, neuron_budget, neuron_facts, neuron_unsupported
from .rules_of_thumb import RuleOfThumb, seed_estimates
from .weights import DTYPE_BYTES, resolve_format, weight_bytes

HOURS_PER_MONTH = 730  # AWS pricing convention
Family = Literal["nvidia", "neuron", "any"]


@functools.cache
def k8s_allowances() -> dict[str, Any]:
    with open(catalog.DATA / "kubernetes.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@dataclass(frozen=True)
class Workload:
    """What the user asks for.

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
    family: Family = "nvidia"
    instance_type: str | None = None
    tensor_parallel_size: int | None = None
    max_hourly_usd: float | None = None
    dtype: str = "auto"
    kv_cache_dtype: str = "auto"
    quantization: str | None = None
    gpu_memory_utilization: float | None = None
    vllm_version: str | None = None
    min_replicas: int = 1
    max_replicas: int = 1
    spread_zones: int = 1


@dataclass(frozen=True)
class PodResources:
    """Requests (and limits) of the model-server container, sized to fit the node."""

    accelerator_resource: str  # nvidia.com/gpu | aws.amazon.com/neuron
    accelerators: int
    cpu_millicores: int
    memory_mib: int  # request = limit (includes /dev/shm, which is memory-backed)
    shm_mib: int
    ephemeral_storage_gib: int

    def requests(self) -> dict[str, str]:
        return {
            "cpu": f"{self.cpu_millicores}m",
            "memory": f"{self.memory_mib}Mi",
            "ephemeral-storage": f"{self.ephemeral_storage_gib}Gi",
            self.accelerator_resource: str(self.accelerators),
        }

    def limits(self) -> dict[str, str]:
        # No CPU limit: CFS throttling stalls tokenization and the scheduler loop; memory is capped at the request.
        return {"memory": f"{self.memory_mib}Mi", self.accelerator_resource: str(self.accelerators)}

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests(), "limits": self.limits(), "shm": f"{self.shm_mib}Mi"}

    def summary(self) -> str:
        """One line for people: `cpu=6570m memory=25937Mi ephemeral-storage=9Gi nvidia.com/gpu=1; limits ...`."""
        req = " ".join(f"{k}={v}" for k, v in self.requests().items())
        lim = " ".join(f"{k}={v}" for k, v in self.limits().items())
        return f"{req}; limits {lim}; /dev/shm {self.shm_mib}Mi"


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


def fleet_nodes(replicas: int, per_node: int, zones: int = 1) -> int:
    """Nodes that `replicas` replicas need at `per_node` a node, spread evenly (maxSkew 1) over `zones` zones."""
    if replicas <= 0:
        return 0
    used = max(1, min(replicas, zones))
    base, extra = divmod(replicas, used)
    return sum(math.ceil((base + (1 if i < extra else 0)) / per_node) for i in range(used))


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
    memory: GpuBudget | NeuronBudget  # one replica's budget (per GPU / per NeuronCore)
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
        b = self.memory
        if isinstance(b, GpuBudget):
            per_rank = b.weights_gib + b.activation_gib + b.non_torch_gib + b.needed_kv_gib * self.concurrency_per_replica
            return per_rank * self.tensor_parallel_size
        return b.needed_per_core_gib * self.tensor_parallel_size

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
            "workload_gib": round(self.workload_gib, 2),
            "rules_of_thumb": [
                {"name": r.name, "formula": r.formula, "total_gib": round(r.total_gib, 2),
                 "difference_gib": round(r.total_gib - self.workload_gib, 2),
                 "kv_bytes_per_token": r.kv_bytes_per_token} for r in self.rules_of_thumb
            ],
        }


# --- per-candidate evaluation -------------------------------------------------------------------------------


@dataclass
class _Option:
    """One instance type at one tensor-parallel degree: the fewest replicas that hold the workload on it."""

    instance: InstanceType
    tp: int
    problem: str | None  # why no fleet of it holds the workload (None: `replicas` do)
    shortfall_gib: float = math.inf  # how much more memory per accelerator one replica lacks (ranking "closest")
    budget: GpuBudget | NeuronBudget | None = None  # at `share` (or at the smallest share tried, when infeasible)
    resources: PodResources | None = None
    host_needed_gib: float = 0.0
    disk_gib: int = 0
    slots: int = 1
    replicas: int = 0  # may exceed max_replicas: then only `problem` says so
    share: int = 0
    nodes: int = 0
    cost: float = math.inf

    @property
    def fleet(self) -> str:
        return f"{self.replicas} x {self.instance.name}" if self.slots == 1 else \
            f"{self.replicas} replicas on {self.nodes} x {self.instance.name}"


def _checkpoint_bytes(arch: Architecture) -> float:
    """Bytes of the checkpoint files to download: the checkpoint's own format and dtype."""
    return weight_bytes(arch, resolve_format(arch, arch.torch_dtype))


def _tp_options(w: Workload, inst: InstanceType) -> list[int]:
    accel = inst.accelerator
    if accel.is_neuron:
        cores = inst.count * accel.cores
        options = [t for t in neuron_facts()["tensor_parallel_sizes"] if t <= cores and w.arch.num_heads % t == 0]
    else:
        options = [2**i for i in range(inst.count.bit_length()) if 2**i <= inst.count]
    if w.tensor_parallel_size is not None:
        options = [t for t in options if t == w.tensor_parallel_size]
    return options


def _resources(w: Workload, inst: InstanceType, tp: int, checkpoint: float) -> tuple[PodResources, float, int, int, str | None]:
    """Pod requests that fit the node, the host memory the server needs, the node disk, replicas per node, and a
    problem if any.

    A node holds as many replicas as both its accelerators and its memory allow; each gets an equal share of
    what the node can allocate (less DaemonSets), so a larger instance never offers a replica less.
    """
    k = k8s_allowances()
    accel = inst.accelerator
    neuron = accel.is_neuron
    devices = math.ceil(tp / accel.cores) if neuron else tp
    cpu_node = (inst.alloc_cpu_m - k["daemonset_reserve"]["cpu_m"]) * k["pod_share"]
    mem_node_mib = (inst.alloc_memory_mi - k["daemonset_reserve"]["memory_mi"]) * k["pod_share"]
    shm_gib = k["shm_gib"]["tp1" if tp == 1 else "tp_multi"]
    factor = neuron_facts()["host_memory_weight_factor"] if neuron else k["gpu_host_memory_weight_factor"]
    host_needed = checkpoint / GIB * factor + k["host_memory_base_gib"] + shm_gib
    slots = max(1, min(inst.count // devices, int(mem_node_mib // (host_needed * 1024)), int(cpu_node // 2000)))
    ephemeral = math.ceil(checkpoint / GIB * (2 if neuron else 1) * 1.1 + k["ephemeral_extra_gib"])
    disk = k["os_disk_gib"] + k["image_disk_gib"]["neuron" if neuron else "nvidia"] + ephemeral * slots
    disk = int(math.ceil(disk / 10) * 10)
    resources = PodResources(
        accelerator_resource="aws.amazon.com/neuron" if neuron else "nvidia.com/gpu",
        accelerators=devices,
        cpu_millicores=int(cpu_node / slots // 10 * 10),
        memory_mib=int(mem_node_mib / slots),
        shm_mib=int(shm_gib * 1024),
        ephemeral_storage_gib=ephemeral,
    )
    problem = None
    if host_needed * 1024 > mem_node_mib:
        what = "compile" if neuron else "load"
        problem = (f"host memory: the server needs {host_needed:.1f} GiB to {what} {checkpoint / GIB:.1f} GiB of weights "
                   f"(with /dev/shm), a pod on this node can have {mem_node_mib / 1024:.1f} GiB")
    elif cpu_node < 2000:
        problem = f"CPU: the server needs at least 2 cores, a pod on this node can have {cpu_node / 1000:.1f}"
    return resources, host_needed, disk, slots, problem


def _max_num_seqs(w: Workload, inst: InstanceType, share: int) -> int:
    """Per replica. GPU: vLLM's default batch for this GPU class, raised to the replica's share of the users if
    that is larger; the KV cache, not this cap, bounds concurrent long requests. Neuron: the compiled batch is the
    replica's share."""
    if inst.accelerator.is_neuron:
        return share
    _, f = facts_for(w.vllm_version)
    large = inst.accelerator.usable_gib >= f["large_gpu_min_gib"] and not inst.accelerator.key.startswith("a100")
    return max(share, f["max_num_seqs"]["large" if large else "small"])


@functools.lru_cache(maxsize=4096)
def _gpu_cached(arch: Architecture, accel_key: str, tp: int, seqs: int, max_model_len: int, dtype: str,
                kv_cache_dtype: str, quantization: str | None, vllm_version: str | None,
                util: float | None) -> GpuBudget:
    accel = catalog.accelerator(accel_key)
    kwargs = dict(
        max_model_len=max_model_len, tensor_parallel_size=tp, max_num_seqs=seqs, dtype=dtype,
        kv_cache_dtype=kv_cache_dtype, quantization=quantization, vllm_version=vllm_version,
    )
    budget = gpu_budget(arch, accel, gpu_memory_utilization=util, **kwargs)
    if util is None and not budget.headroom_ok:
        # Keep just enough outside the budget for the CUDA context, graph pool and sampler warm-up.
        lowered = math.floor((1 - budget.headroom_needed_gib / budget.total_gib) * 100) / 100
        if lowered > 0.5:
            budget = gpu_budget(arch, accel, gpu_memory_utilization=lowered, **kwargs)
    return budget


def _gpu(w: Workload, inst: InstanceType, tp: int, seqs: int) -> GpuBudget:
    return _gpu_cached(w.arch, inst.accelerator.key, tp, seqs, w.max_model_len, w.dtype, w.kv_cache_dtype,
                       w.quantization, w.vllm_version, w.gpu_memory_utilization)


def _budget(w: Workload, inst: InstanceType, tp: int, share: int) -> GpuBudget | NeuronBudget:
    if inst.accelerator.is_neuron:
        return neuron_budget(w.arch, inst.accelerator, tensor_parallel_size=tp, max_model_len=w.max_model_len,
                             max_num_seqs=share, dtype=w.dtype, quantization=w.quantization)
    return _gpu(w, inst, tp, _max_num_seqs(w, inst, share))


def _replica_problem(w: Workload, b: GpuBudget | NeuronBudget, share: int) -> str | None:
    problem = b.problem()
    if problem is None and b.max_concurrency < share:
        problem = (f"the KV cache of one replica holds {b.max_concurrency:.1f} requests of {w.max_model_len} tokens "
                   f"at once, {share} are asked of it")
    return problem


def _shortfall(b: GpuBudget | NeuronBudget, share: int) -> float:
    if isinstance(b, GpuBudget):
        return max(0.0, share * b.needed_kv_gib - b.kv_cache_gib, b.headroom_needed_gib - b.headroom_gib)
    return b.shortfall_gib()


def _replica_bounds(w: Workload) -> tuple[int, int]:
    lo = max(1, w.min_replicas, 2 if w.spread_zones >= 2 else 1)
    return lo, w.max_replicas


def _evaluate(w: Workload, inst: InstanceType, checkpoint: float, n_lo: int) -> list[_Option]:
    """Every tensor-parallel option of `inst`, each with the fewest replicas (>= n_lo, possibly above the
    maximum) whose share of the users one replica holds."""
    accel = inst.accelerator
    options = _tp_options(w, inst)
    if not options:
        pinned = (f" «tensor_parallel_size» {w.tensor_parallel_size}" if w.tensor_parallel_size
                  else " a tensor-parallel degree")
        reason = f"has no{pinned} that fits its {inst.count} {accel.name} and splits the {w.arch.num_heads} attention heads"
        return [_Option(inst, 0, reason)]
    if accel.is_neuron:
        unsupported = neuron_unsupported(w.arch, quantization=w.quantization, kv_cache_dtype=w.kv_cache_dtype,
                                         gpu_memory_utilization=w.gpu_memory_utilization)
        if unsupported:
            return [_Option(inst, 0, unsupported)]
    elif w.dtype == "auto" and w.arch.torch_dtype == "bfloat16" and not accel.bf16:
        reason = (f"{accel.name} has no bfloat16 and {w.model} is a bfloat16 checkpoint; set «dtype» float16 to allow "
                  "running it in float16")
        return [_Option(inst, 0, reason)]
    out = []
    n_top = max(n_lo, w.concurrency)  # beyond this every replica already has one request
    for tp in options:
        resources, host, disk, slots, host_problem = _resources(w, inst, tp, checkpoint)
        base = dict(resources=resources, host_needed_gib=host, disk_gib=disk, slots=slots)

        def attempt(n: int) -> tuple[GpuBudget | NeuronBudget | None, str | None, int]:
            share = math.ceil(w.concurrency / n)
            try:
                b = _budget(w, inst, tp, share)
            except SizingError as exc:
                return None, exc.template, share
            return b, _replica_problem(w, b, share), share

        b, problem, share = attempt(n_top)
        if b is None or problem or host_problem:
            shortfall = _shortfall(b, share) if b is not None else math.inf
            if host_problem and b is not None and not problem:
                shortfall = max(shortfall, host - resources.memory_mib / 1024)
            out.append(_Option(inst, tp, problem or host_problem, shortfall, b, share=share, **base))
            continue
        lo, hi = n_lo, n_top  # feasible at hi; smallest feasible n (fewer replicas never hold more)
        while lo < hi:
            mid = (lo + hi) // 2
            mb, mp, _ = attempt(mid)
            if mb is not None and mp is None:
                hi = mid
            else:
                lo = mid + 1
        b, _, share = attempt(lo)
        nodes = fleet_nodes(lo, slots, w.spread_zones)
        out.append(_Option(inst, tp, None, 0.0, b, replicas=lo, share=share, nodes=nodes,
                           cost=nodes * inst.hourly_usd, **base))
    return out


# --- the plan ------------------------------------------------------------------------------------------------


def _engine_args(w: Workload, o: _Option) -> tuple[str, ...]:
    b = o.budget
    args = ["--max-model-len", str(w.max_model_len), "--tensor-parallel-size", str(o.tp),
            "--max-num-seqs", str(b.max_num_seqs)]
    if isinstance(b, GpuBudget):
        args += ["--gpu-memory-utilization", f"{b.gpu_memory_utilization:g}", "--dtype", b.dtype,
                 "--kv-cache-dtype", w.kv_cache_dtype]
        if b.vllm_quantization:
            args += ["--quantization", b.vllm_quantization]
    else:
        # vllm-neuron: contiguous KV, one block of max_model_len per sequence. Without prefix caching its platform
        # sets block_size = max_model_len itself (vllm_neuron/platform.py check_and_update_config); vLLM's CLI parser
        # refuses --block-size above 256 (0.16 CacheConfig BlockSize), so the flag is not passed.
        args += ["--dtype", b.dtype, "--no-enable-prefix-caching"]
    return tuple(args)


def _utilization_note(w: Workload, o: _Option) -> str | None:
    """Why the planner set gpu_memory_utilization below vLLM's default (A10G/L4 at TP > 1, mostly)."""
    b = o.budget
    if not isinstance(b, GpuBudget) or w.gpu_memory_utilization is not None:
        return None
    _, f = facts_for(w.vllm_version)
    default = f["default_gpu_memory_utilization"]
    if b.gpu_memory_utilization >= default:
        return None
    context = f["cuda_context_gib"]["tp1" if o.tp == 1 else "tp_multi"]
    graphs = 0.0 if b.cudagraph_in_budget else b.cudagraph_gib
    warmup = b.headroom_needed_gib - context - graphs
    accel = o.instance.accelerator
    return (f"«gpu_memory_utilization» lowered from vLLM {b.vllm_version}'s default {default:g} to "
            f"{b.gpu_memory_utilization:g}: at TP {o.tp} each {accel.name} must keep {b.headroom_needed_gib:.2f} GiB "
            f"outside vLLM's budget (CUDA context {context:.2f}{' with NCCL' if o.tp > 1 else ''}, CUDA graphs "
            f"{graphs:.2f}, sampler warm-up {warmup:.2f} GiB), and {1 - default:.0%} of its {b.total_gib:.2f} GiB is only "
            f"{(1 - default) * b.total_gib:.2f} GiB; set «gpu_memory_utilization» to override")


def _per_replica(w: Workload, o: _Option) -> str:
    inst, b = o.instance, o.budget
    accel = inst.accelerator
    if isinstance(b, GpuBudget):
        return (f"each replica has {o.tp} x {accel.name} (TP {o.tp}); per GPU {b.weights_gib:.2f} GiB weights "
                f"({b.weight_format}) + {b.activation_gib:.2f} activation + {b.non_torch_gib:.2f} non-torch leave "
                f"{b.kv_cache_gib:.2f} GiB of KV cache = {b.kv_cache_tokens:,} tokens, {b.max_concurrency:.1f} "
                f"full-length requests at once for its {o.share} (utilization {b.gpu_memory_utilization:g}, "
                f"vLLM {b.vllm_version}).")
    return (f"each replica has {b.devices} x {accel.name} = {o.tp} NeuronCores (TP {o.tp}); per core "
            f"{b.weights_per_core_gib:.2f} GiB weights + {b.kv_cache_per_core_gib:.2f} GiB KV cache of "
            f"{b.usable_per_core_gib:.1f} usable (batch {b.max_num_seqs} compiled, KV heads {b.attention_sharding}); "
            f"host memory {o.host_needed_gib:.0f} GiB for loading and compiling.")


def _fleet_words(w: Workload, o: _Option) -> str:
    inst = o.instance
    spread = f", spread over {min(o.replicas, w.spread_zones)} zones" if w.spread_zones >= 2 else ""
    per_node = f", room for {o.slots} replicas a node" if o.slots > 1 else ""
    return (f"{o.replicas} replica{'s' if o.replicas > 1 else ''} on {o.nodes} x {inst.name} "
            f"(${inst.hourly_usd:.4g}/h each, fleet ${o.cost:.4g}/h{per_node}{spread})")


def _explain(w: Workload, o: _Option, family: str, alternative: str | None) -> str:
    load = f"{w.model} at {w.max_model_len} tokens x {w.concurrency} concurrent requests ({o.share} per replica)"
    if w.instance_type:
        tail = (f" Cheaper: {alternative}." if alternative else
                f" It is also the cheapest {family} fleet for this workload.")
        return f"{inst_pinned(w)}: {_fleet_words(w, o)} holds {load}; {_per_replica(w, o)}{tail}"
    return f"{_fleet_words(w, o)} is the cheapest {family} fleet that holds {load}: {_per_replica(w, o)}"


def inst_pinned(w: Workload) -> str:
    return f"{w.instance_type} is pinned («instance_type»), not chosen"


def _suggest(w: Workload, o: _Option | None) -> str:
    hints = []
    b = o.budget if o else None
    if isinstance(b, GpuBudget) and b.estimated_max_model_len and b.estimated_max_model_len < w.max_model_len:
        hints.append(f"«max_model_len» <= {b.estimated_max_model_len}")
    if isinstance(b, GpuBudget) and b.fits and b.headroom_ok and b.max_concurrency < o.share:
        hints.append(f"«concurrency» <= {int(b.max_concurrency) * max(1, w.max_replicas)}")
    if w.kv_cache_dtype == "auto" and w.family != "neuron":
        hints.append("«kv_cache_dtype» fp8")
    if w.quantization is None and w.arch.quant is None and w.family != "neuron":
        hints.append("«quantization» fp8 (halves the weights)")
    if w.tensor_parallel_size is not None:
        hints.append(f"a larger «tensor_parallel_size» than {w.tensor_parallel_size} (or unset it)")
    if w.max_hourly_usd is not None:
        hints.append("a higher «max_hourly_usd»")
    if w.family != "any":
        hints.append("«family» any")
    return "; try " + ", or ".join(hints) if hints else ""


def _validate(w: Workload, candidates: list[InstanceType], family_label: str) -> None:
    """Settings that are wrong whatever the instance: each fails at once, naming its key."""
    if w.concurrency <= 0:
        raise SizingError(f"«concurrency» must be positive (got {w.concurrency})", key="concurrency")
    if w.family not in ("nvidia", "neuron", "any"):
        raise SizingError(f"«family» '{w.family}' is not one of nvidia, neuron, any", key="family")
    if w.min_replicas < 0 or w.max_replicas < 1 or w.min_replicas > w.max_replicas:
        raise SizingError(f"replica bounds {w.min_replicas}..{w.max_replicas} need 0 <= «min_replicas» <= "
                          f"«max_replicas» and «max_replicas» >= 1", key="max_replicas")
    if w.spread_zones < 1:
        raise SizingError(f"«spread_zones» must be at least 1 (got {w.spread_zones})", key="spread_zones")
    if w.spread_zones >= 2 and w.max_replicas < 2:
        raise SizingError(f"spreading over {w.spread_zones} availability zones («spread_zones») needs at least 2 "
                          f"replicas, and «max_replicas» is {w.max_replicas}; raise «max_replicas» to 2 or more",
                          key="max_replicas")
    if w.max_hourly_usd is not None and w.max_hourly_usd <= 0:
        raise SizingError(f"«max_hourly_usd» must be positive (got {w.max_hourly_usd:g})", key="max_hourly_usd")
    check_context(w.arch, w.max_model_len)
    facts_for(w.vllm_version)  # an invalid vLLM version is the binding reason, whatever the instance
    if w.dtype not in DTYPES:
        raise SizingError(f"«dtype» '{w.dtype}' is not one of {', '.join(DTYPES)}", key="dtype")
    if w.kv_cache_dtype not in KV_CACHE_DTYPES:
        raise SizingError(f"«kv_cache_dtype» '{w.kv_cache_dtype}' is not one of {', '.join(KV_CACHE_DTYPES)}",
                          key="kv_cache_dtype")
    if w.gpu_memory_utilization is not None and not 0 < w.gpu_memory_utilization <= 1:
        raise SizingError(f"«gpu_memory_utilization» must be in (0, 1] (got {w.gpu_memory_utilization})",
                          key="gpu_memory_utilization")
    vendors = {i.accelerator.vendor for i in candidates}
    if "nvidia" in vendors or w.family == "nvidia":
        resolve_format(w.arch, "bfloat16", w.quantization)  # a format vLLM cannot load or produce fails here
    if vendors == {"neuron"}:
        unsupported = neuron_unsupported(w.arch, quantization=w.quantization, kv_cache_dtype=w.kv_cache_dtype,
                                         gpu_memory_utilization=w.gpu_memory_utilization)
        if unsupported:
            k = next(k for k in ("quantization", "kv_cache_dtype", "gpu_memory_utilization") if f"«{k}»" in unsupported) \
                if "«" in unsupported else "model"
            raise SizingError(unsupported, key=k)
    tp = w.tensor_parallel_size
    if tp is not None:
        if vendors == {"neuron"}:
            check_neuron_tp(w.arch, tp)
        elif vendors == {"nvidia"}:
            check_tensor_parallel(w.arch, tp)
        if not any(_tp_options(w, i) for i in candidates):
            most = max((i.count * i.accelerator.cores for i in candidates), default=0)
            what = "NeuronCores" if vendors == {"neuron"} else "GPUs" if vendors == {"nvidia"} else "accelerators"
            where = f"instance type {w.instance_type}" if w.instance_type else f"{family_label} instance type"
            raise SizingError(f"«tensor_parallel_size» {tp} fits no {where}: tensor parallelism needs {tp} {what} "
                              f"in one node (a power of two on GPUs), and the most here is {most}",
                              key="tensor_parallel_size")


def _why_not(w: Workload, opts: list[_Option], chosen: _Option | None, n_hi: int) -> tuple[str, float]:
    """Why an instance type was not chosen: its best fleet and what ruled it out."""
    inst = opts[0].instance
    feasible = [o for o in opts if o.problem is None]
    if not feasible:
        last = opts[-1]  # the largest tensor-parallel degree: the most this instance type can give one replica
        tp = f"at TP {last.tp}: " if last.tp else ""
        return tp + last.problem, last.shortfall_gib
    in_bounds = [o for o in feasible if o.replicas <= n_hi]
    best = min(in_bounds or feasible, key=lambda o: (o.cost, o.replicas, o.tp))
    if best.replicas > n_hi:
        return (f"holds it only with {best.replicas} replicas at TP {best.tp} ({best.nodes} x {inst.name}, "
                f"${best.cost:.4g}/h); «max_replicas» is {n_hi}"), 0.0
    if w.max_hourly_usd is not None and best.cost > w.max_hourly_usd:
        return (f"its cheapest fleet, {_fleet_words(w, best)}, is above the «max_hourly_usd» cap of "
                f"${w.max_hourly_usd:g}/h"), 0.0
    assert chosen is not None
    return (f"its cheapest fleet, {_fleet_words(w, best)} at TP {best.tp}, costs more than "
            f"${chosen.cost:.4g}/h"), 0.0


def plan(w: Workload) -> DeploymentPlan:
    """The cheapest fleet that holds the workload, or a SizingError that says what binds and what to change."""
    if w.instance_type:
        inst = catalog.instance(w.instance_type)
        vendor = inst.accelerator.vendor
        if w.family != "any" and vendor != w.family:
            raise SizingError(f"«instance_type» {inst.name} has {inst.accelerator.name}, not a {w.family} accelerator "
                              f"(«family» {w.family})", key="instance_type")
        candidates = [inst]
    else:
        candidates = [i for i in catalog.instances().values() if w.family in ("any", i.accelerator.vendor)]
    candidates.sort(key=lambda i: (i.hourly_usd, i.count, i.name))
    family_label = {"nvidia": "NVIDIA", "neuron": "Neuron", "any": "NVIDIA or Neuron"}[w.family]
    _validate(w, candidates, family_label)
    n_lo, n_hi = _replica_bounds(w)

    checkpoint = _checkpoint_bytes(w.arch)  # the same for every candidate
    # Every candidate is evaluated, even above the price cap, so that an error can say whether the cap binds.
    by_instance = {inst.name: _evaluate(w, inst, checkpoint, n_lo) for inst in candidates}

    def order(o: _Option):
        return (o.cost, o.replicas, o.instance.hourly_usd, o.instance.count, o.instance.name, o.tp)

    all_opts = [o for opts in by_instance.values() for o in opts]
    fits = [o for o in all_opts if o.problem is None]
    within = [o for o in fits if o.replicas <= n_hi and (w.max_hourly_usd is None or o.cost <= w.max_hourly_usd)]
    chosen = min(within, key=order) if within else None

    if chosen is None:
        raise _no_fit(w, all_opts, fits, n_hi, family_label)

    rejected = []
    for inst in candidates:
        if inst.name == chosen.instance.name or inst.hourly_usd >= chosen.cost:
            continue
        reason, shortfall = _why_not(w, by_instance[inst.name], chosen, n_hi)
        rejected.append(Rejection(inst.name, inst.hourly_usd, reason, shortfall))

    alternative = None
    if w.instance_type:
        try:
            free = plan(replace(w, instance_type=None, tensor_parallel_size=None))
        except SizingError:
            free = None
        if free is not None and free.fleet_hourly_usd < chosen.cost - 1e-9:
            alternative = (f"{free.replicas} replica{'s' if free.replicas > 1 else ''} on {free.nodes} x "
                           f"{free.instance_type} at TP {free.tensor_parallel_size}, ${free.fleet_hourly_usd:.4g}/h "
                           f"(${chosen.cost - free.fleet_hourly_usd:.4g}/h less); unset «instance_type»"
                           f"{' and «tensor_parallel_size»' if w.tensor_parallel_size else ''} to let the planner choose")

    b = chosen.budget
    dtype_bytes = DTYPE_BYTES[b.dtype]
    return DeploymentPlan(
        model=w.model,
        model_type=w.arch.model_type,
        parameters=w.arch.parameters,
        instance_type=chosen.instance.name,
        accelerator=chosen.instance.accelerator.key,
        accelerator_name=chosen.instance.accelerator.name,
        vendor=chosen.instance.accelerator.vendor,
        accelerators_per_node=chosen.instance.count,
        accelerators=chosen.resources.accelerators,
        replicas_per_node=chosen.slots,
        tensor_parallel_size=chosen.tp,
        vllm_version=b.vllm_version,
        max_model_len=w.max_model_len,
        max_num_seqs=b.max_num_seqs,
        concurrency=w.concurrency,
        dtype=b.dtype,
        kv_cache_dtype=w.kv_cache_dtype,
        gpu_memory_utilization=b.gpu_memory_utilization if isinstance(b, GpuBudget) else None,
        quantization=w.quantization,
        engine_args=_engine_args(w, chosen),
        resources=chosen.resources,
        host_memory_needed_gib=chosen.host_needed_gib,
        checkpoint_gib=checkpoint / GIB,
        node_disk_gib=chosen.disk_gib,
        hourly_usd=chosen.instance.hourly_usd,
        memory=b,
        rejected=tuple(rejected),
        explanation_template=_explain(w, chosen, family_label, alternative),
        rules_of_thumb=tuple(seed_estimates(w.arch, dtype_bytes, w.max_model_len, chosen.share)),
        replicas=chosen.replicas,
        nodes=chosen.nodes,
        fleet_hourly_usd=chosen.cost,
        concurrency_per_replica=chosen.share,
        min_replicas=w.min_replicas,
        max_replicas=w.max_replicas,
        spread_zones=w.spread_zones,
        pinned=bool(w.instance_type),
        cheapest_alternative=alternative,
        weight_format=b.weight_format,
        vllm_quantization=b.vllm_quantization if isinstance(b, GpuBudget) else None,
        utilization_note=_utilization_note(w, chosen),
    )


def _no_fit(w: Workload, all_opts: list[_Option], fits: list[_Option], n_hi: int, family_label: str) -> SizingError:
    """The error when no fleet holds the workload within the bounds: the binding constraint first."""
    load = f"{w.model} at {w.max_model_len} tokens x {w.concurrency}"
    where = f"«instance_type» {w.instance_type}" if w.instance_type else f"the {family_label} catalog"
    cap = w.max_hourly_usd
    in_bounds = [o for o in fits if o.replicas <= n_hi]
    if in_bounds:  # only the price cap binds
        best = min(in_bounds, key=lambda o: (o.cost, o.replicas))
        return SizingError(f"no fleet from {where} that holds {load} stays within the «max_hourly_usd» cap of "
                           f"${cap:g}/h: the cheapest is {_fleet_words(w, best)} at TP {best.tp}; raise "
                           f"«max_hourly_usd» to {math.ceil(best.cost * 100) / 100:g} or lower «concurrency» or "
                           f"«max_model_len»", key="max_hourly_usd")
    if fits:  # more replicas than allowed would hold it
        best = min(fits, key=lambda o: (o.cost, o.replicas))
        also = (f" (that fleet is also above the «max_hourly_usd» cap of ${cap:g}/h)"
                if cap is not None and best.cost > cap else "")
        return SizingError(f"{where} holds {load} only with more replicas than «max_replicas» {n_hi} allows: the "
                           f"cheapest fleet is {_fleet_words(w, best)} at TP {best.tp}{also}; raise «max_replicas» "
                           f"to {best.replicas}, or lower «concurrency»", key="max_replicas")
    finite = [o for o in all_opts if o.budget is not None and math.isfinite(o.shortfall_gib)]
    binding = "instance_type" if w.instance_type else "tensor_parallel_size" if w.tensor_parallel_size else "max_model_len"
    if not finite:
        detail = min(all_opts, key=lambda o: o.instance.hourly_usd).problem if all_opts else "no instance type matches"
        k = next((k for k in ("quantization", "kv_cache_dtype", "gpu_memory_utilization", "dtype",
                               "tensor_parallel_size") if f"«{k}»" in (detail or "")), binding)
        return SizingError(f"nothing in {where} can serve {w.model}: {detail}", key=k)
    closest = min(finite, key=lambda o: (o.shortfall_gib, o.instance.hourly_usd))
    one = " even at one request per replica" if w.concurrency > 1 else ""
    subject = (f"«instance_type» {w.instance_type} cannot hold {load}{one}: at TP {closest.tp}: {closest.problem}"
               if w.instance_type else
               f"nothing in {where} holds {load}{one}; closest is {closest.instance.name} at TP "
               f"{closest.tp}: {closest.problem}")
    return SizingError(subject + _suggest(w, closest), key=binding)
