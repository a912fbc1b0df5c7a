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

The search runs in named stages, each a function below: `candidates` (the instance types the vendor and a pin
allow), `validate` (sizing/validation.py: settings wrong whatever the instance), `evaluate` (every candidate at
every tensor-parallel degree, with the fewest replicas that hold the users), `choose` (the cheapest fleet within
the bounds), `rejections` (why each cheaper type was not chosen), `cheaper_unpinned` (for a pinned type, what the
planner would choose) and `assemble` (the DeploymentPlan). Vendors differ only behind sizing/budget.py; the words
are in sizing/wording.py, the pod and node side in sizing/pod.py, the types in sizing/plans.py.
"""

from __future__ import annotations

import math
from dataclasses import replace

from . import catalog, slo
from .budget import rules_for, tp_options
from .catalog import GIB, InstanceType
from .errors import SizingError
from .plans import HOURS_PER_MONTH, DeploymentPlan, Option, Rejection, Vendor, Workload
from .pod import PodResources, checkpoint_bytes, fleet_nodes, host_fit, k8s_allowances
from .rules_of_thumb import seed_estimates
from .validation import validate
from .weights import DTYPE_BYTES
from .wording import (
    Change,
    Shortfall,
    explain,
    no_fit,
    replica_problem,
    suggestion,
    utilization_note,
    why_not,
)

__all__ = ["HOURS_PER_MONTH", "DeploymentPlan", "Vendor", "PodResources", "Rejection", "Workload", "fleet_nodes",
           "k8s_allowances", "plan"]

VENDOR_LABELS = {"nvidia": "NVIDIA", "neuron": "Neuron", "any": "NVIDIA or Neuron"}


def plan(w: Workload) -> DeploymentPlan:
    """The cheapest fleet that holds the workload, or a SizingError that says what binds and what to change."""
    try:
        return _plan(w)
    except Shortfall as exc:
        raise exc.with_suggestions(_suggestions(w, exc)) from None


def _suggestions(w: Workload, exc: Shortfall) -> list[Change]:
    """The changes that make the workload fit, each verified by planning it, with the fleet it gives (a change that
    plans nothing, such as fp8 on an instance type too small even for fp8 weights, is not offered)."""
    out = []
    for changes, words in exc.candidates:
        try:
            p = _plan(replace(w, **changes))
        except SizingError:
            continue
        out.append((changes, suggestion(words, p.replicas, p.nodes, p.instance_type, p.tensor_parallel_size,
                                        p.fleet_hourly_usd)))
    return out


def _plan(w: Workload) -> DeploymentPlan:
    """The search, stage by stage (a Shortfall carries the candidate changes, unverified)."""
    candidates = _candidates(w)
    vendor_label = VENDOR_LABELS[w.vendor]
    validate(w, candidates, vendor_label)
    n_lo, n_hi = _replica_bounds(w)
    checkpoint = checkpoint_bytes(w.arch)  # the same for every candidate
    # Every candidate is evaluated, even above the price cap, so that an error can say whether the cap binds.
    by_instance = {inst.name: _evaluate(w, inst, checkpoint, n_lo) for inst in candidates}
    all_opts = [o for opts in by_instance.values() for o in opts]
    fits = [o for o in all_opts if o.problem is None]
    chosen = _choose(w, fits, n_hi)
    if chosen is None:
        where = f"«instance_type» {w.instance_type}" if w.instance_type else f"the {vendor_label} catalog"
        raise slo.unmet(w, all_opts, where) or no_fit(w, all_opts, fits, n_hi, vendor_label)
    rejected = _rejections(w, candidates, by_instance, chosen, n_hi)
    alternative = _cheaper_unpinned(w, chosen)
    return _assemble(w, chosen, checkpoint, rejected, alternative, vendor_label)


def _candidates(w: Workload) -> list[InstanceType]:
    """The instance types the vendor allows (or the pinned one), cheapest first."""
    if w.instance_type:
        inst = catalog.instance(w.instance_type)
        vendor = inst.accelerator.vendor
        if w.vendor != "any" and vendor != w.vendor:
            raise SizingError(f"«instance_type» {inst.name} has {inst.accelerator.name}, not a {w.vendor} accelerator "
                              f"(«vendor» {w.vendor})", key="instance_type")
        candidates = [inst]
    else:
        candidates = [i for i in catalog.instances().values() if w.vendor in ("any", i.accelerator.vendor)]
    return sorted(candidates, key=lambda i: (i.hourly_usd, i.count, i.name))


def _replica_bounds(w: Workload) -> tuple[int, int]:
    lo = max(1, w.min_replicas, 2 if w.spread_zones >= 2 else 1)
    return lo, w.max_replicas


def _evaluate(w: Workload, inst: InstanceType, checkpoint: float, n_lo: int) -> list[Option]:
    """Every tensor-parallel option of `inst`, each with the fewest replicas (>= n_lo, possibly above the
    maximum) whose share of the users one replica holds."""
    accel = inst.accelerator
    rules = rules_for(inst)
    options = tp_options(w, inst)
    if not options:
        pinned = (f" «tensor_parallel_size» {w.tensor_parallel_size}" if w.tensor_parallel_size
                  else " a tensor-parallel degree")
        reason = f"has no{pinned} that fits its {inst.count} {accel.name} and splits the {w.arch.num_heads} attention heads"
        return [Option(inst, 0, reason)]
    refusal = rules.refusal(w, inst)
    if refusal:
        return [Option(inst, 0, refusal)]
    out = []
    n_top = max(n_lo, w.concurrency)  # beyond this every replica already has one request
    for tp in options:
        host = host_fit(inst, tp, checkpoint, w.arch)

        def attempt(n: int, tp: int = tp):  # tp bound now: called within this iteration only
            share = math.ceil(w.concurrency / n)
            try:
                b = rules.budget(w, inst, tp, share)
            except SizingError as exc:
                return None, exc.template, share
            return b, replica_problem(w, b, share), share

        b, problem, share = attempt(n_top)
        if b is None or problem or host.problem:
            shortfall = b.shortfall_for(share) if b is not None else math.inf
            if host.problem and b is not None and not problem:
                shortfall = max(shortfall, host.host_needed_gib - host.resources.memory_mib / 1024)
            out.append(Option(inst, tp, problem or host.problem, shortfall, b, host, share=share))
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
        outcome, binding = None, "memory"
        target = slo.target_of(w)
        if target is not None:  # the fewest replicas from `lo` up whose share meets the latency target and the rate
            outcome, binding = slo.fewest_replicas(target, inst, w.arch, lambda s, tp=tp: _held(w, rules, inst, tp, s), lo,
                                                   w.max_replicas, w.quantization)
            if not outcome.ok:
                out.append(Option(inst, tp, slo.miss_words(outcome), math.inf, b, host, share=share, outcome=outcome))
                continue
            lo = outcome.replicas
            b, _, share = attempt(lo)
        nodes = fleet_nodes(lo, host.slots, w.spread_zones)
        out.append(Option(inst, tp, None, 0.0, b, host, replicas=lo, share=share, nodes=nodes,
                          cost=nodes * inst.hourly_usd, outcome=outcome, binding=binding))
    return out


def _held(w: Workload, rules, inst: InstanceType, tp: int, share: int):
    """The budget of one replica holding `share` users, or None when it cannot hold them."""
    try:
        b = rules.budget(w, inst, tp, share)
    except SizingError:
        return None
    return b if replica_problem(w, b, share) is None else None


def _choose(w: Workload, fits: list[Option], n_hi: int) -> Option | None:
    """The cheapest fleet within the replica bound and the price cap (ties: fewer replicas, the cheaper instance,
    fewer accelerators, the name, the smaller TP)."""
    within = [o for o in fits if o.replicas <= n_hi and (w.max_hourly_usd is None or o.cost <= w.max_hourly_usd)]
    if not within:
        return None
    return min(within, key=lambda o: (o.cost, o.replicas, o.instance.hourly_usd, o.instance.count, o.instance.name, o.tp))


def _rejections(w: Workload, candidates: list[InstanceType], by_instance: dict[str, list[Option]], chosen: Option,
                n_hi: int) -> list[Rejection]:
    """Every instance type cheaper per hour than the chosen fleet, with the reason it was not chosen."""
    rejected = []
    for inst in candidates:
        if inst.name == chosen.instance.name or inst.hourly_usd >= chosen.cost:
            continue
        reason, shortfall = why_not(w, by_instance[inst.name], chosen, n_hi)
        rejected.append(Rejection(inst.name, inst.hourly_usd, reason, shortfall))
    return rejected


def _cheaper_unpinned(w: Workload, chosen: Option) -> str | None:
    """For a pinned instance type: the fleet the planner would choose instead, when it is cheaper."""
    if not w.instance_type:
        return None
    try:
        free = _plan(replace(w, instance_type=None, tensor_parallel_size=None))
    except SizingError:
        return None
    if free.fleet_hourly_usd >= chosen.cost - 1e-9:
        return None
    return (f"{free.replicas} replica{'s' if free.replicas > 1 else ''} on {free.nodes} x "
                       f"{free.instance_type} at TP {free.tensor_parallel_size}, ${free.fleet_hourly_usd:.4g}/h "
                       f"(${chosen.cost - free.fleet_hourly_usd:.4g}/h less); unset «instance_type»"
                       f"{' and «tensor_parallel_size»' if w.tensor_parallel_size else ''} to let the planner choose")


def _engine_args(w: Workload, o: Option) -> tuple[str, ...]:
    """vLLM's arguments: length, degree and batch, then the vendor's own (from the budget that assumed them)."""
    b = o.budget
    return ("--max-model-len", str(w.max_model_len), "--tensor-parallel-size", str(o.tp),
            "--max-num-seqs", str(b.max_num_seqs), *b.engine_args())


def _assemble(w: Workload, chosen: Option, checkpoint: float, rejected: list[Rejection], alternative: str | None,
              vendor_label: str) -> DeploymentPlan:
    b = chosen.budget
    host = chosen.host
    dtype_bytes = DTYPE_BYTES[b.dtype]
    figures = (slo.fleet_figures(slo.target_of(w), chosen.outcome, chosen.cost, chosen.binding)
               if chosen.outcome is not None else None)
    return DeploymentPlan(
        model=w.model,
        model_type=w.arch.model_type,
        parameters=w.arch.parameters,
        instance_type=chosen.instance.name,
        accelerator=chosen.instance.accelerator.key,
        accelerator_name=chosen.instance.accelerator.name,
        vendor=chosen.instance.accelerator.vendor,
        accelerators_per_node=chosen.instance.count,
        accelerators=host.resources.accelerators,
        replicas_per_node=chosen.slots,
        tensor_parallel_size=chosen.tp,
        vllm_version=b.vllm_version,
        max_model_len=w.max_model_len,
        max_num_seqs=b.max_num_seqs,
        concurrency=w.concurrency,
        dtype=b.dtype,
        kv_cache_dtype=w.kv_cache_dtype,
        gpu_memory_utilization=b.gpu_memory_utilization,
        quantization=w.quantization,
        engine_args=_engine_args(w, chosen),
        resources=host.resources,
        host_memory_needed_gib=host.host_needed_gib,
        checkpoint_gib=checkpoint / GIB,
        node_disk_gib=host.disk_gib,
        hourly_usd=chosen.instance.hourly_usd,
        memory=b,
        rejected=tuple(rejected),
        explanation_template=explain(w, chosen, vendor_label, alternative) + (
            " " + slo.summary(figures, chosen.replicas, rejected) if figures else ""),
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
        vllm_quantization=b.vllm_quantization,
        utilization_note=utilization_note(w, chosen),
        performance=figures,
    )
