"""The planner's words: the plan's explanation, why an instance type was not chosen, and the error when nothing
fits. Settings are named as «key» (sizing/errors.py), so each front end renders them in its own words."""

from __future__ import annotations

import math
from typing import Any

from .budget import Budget
from .errors import SizingError
from .memory import facts_for
from .plans import Option, Workload


def utilization_note(w: Workload, o: Option) -> str | None:
    """Why the planner set gpu_memory_utilization below vLLM's default (A10G/L4 at TP > 1, mostly)."""
    b = o.budget
    if b.gpu_memory_utilization is None or w.gpu_memory_utilization is not None:
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


def replica_problem(w: Workload, b: Budget, share: int) -> str | None:
    """Why one replica cannot hold `share` full-length requests, or None."""
    problem = b.problem()
    if problem is None and w.max_num_seqs is not None and w.max_num_seqs < share:
        problem = (f"«max_num_seqs» {w.max_num_seqs} caps the batch of one replica below its {share} concurrent "
                   f"requests")
    elif problem is None and b.max_concurrency < share:
        problem = (f"the KV cache of one replica holds {b.max_concurrency:.1f} requests of {w.max_model_len} tokens "
                   f"at once, {share} are asked of it")
    return problem


def per_replica(o: Option) -> str:
    return o.budget.describe(o.instance.accelerator.name, o.share, o.host.host_needed_gib)


def fleet_words(w: Workload, o: Option) -> str:
    inst = o.instance
    spread = f", spread over {min(o.replicas, w.spread_zones)} zones" if w.spread_zones >= 2 else ""
    per_node = f", room for {o.slots} replicas a node" if o.slots > 1 else ""
    return (f"{o.replicas} replica{'s' if o.replicas > 1 else ''} on {o.nodes} x {inst.name} "
            f"(${inst.hourly_usd:.4g}/h each, fleet ${o.cost:.4g}/h{per_node}{spread})")


def explain(w: Workload, o: Option, vendor: str, alternative: str | None) -> str:
    load = f"{w.model} at {w.max_model_len} tokens x {w.concurrency} concurrent requests ({o.share} per replica)"
    if w.instance_type:
        tail = (f" Cheaper: {alternative}." if alternative else
                f" It is also the cheapest {vendor} fleet for this workload.")
        return f"{inst_pinned(w)}: {fleet_words(w, o)} holds {load}; {per_replica(o)}{tail}"
    return f"{fleet_words(w, o)} is the cheapest {vendor} fleet that holds {load}: {per_replica(o)}"


def inst_pinned(w: Workload) -> str:
    return f"{w.instance_type} is pinned («instance_type»), not chosen"


Change = tuple[dict[str, Any], str]  # Workload changes, and their words


class Shortfall(SizingError):
    """No instance type holds the workload at these settings. `candidates` are the changes that might help; the
    planner plans each and keeps in `suggestions` only those that hold it, with the fleet they give."""

    def __init__(self, message: str, key: str | None = None, candidates: tuple[Change, ...] = (),
                 suggestions: tuple[Change, ...] = ()) -> None:
        hints = [words for _, words in suggestions]
        tail = "; what would hold it: " + ", or ".join(hints) if hints else ""
        super().__init__(message + tail, key=key)
        self.subject = message
        self.candidates = candidates
        self.suggestions = suggestions

    def with_suggestions(self, suggestions: list[Change]) -> Shortfall:
        return Shortfall(self.subject, self.key, self.candidates, tuple(suggestions))


def candidate_changes(w: Workload, o: Option | None) -> list[Change]:
    """Changes of one setting (or one pin) that might make the workload fit, least disruptive first, in words. The
    planner keeps only those that plan."""
    out: list[Change] = []
    if w.instance_type:
        also = " and «tensor_parallel_size»" if w.tensor_parallel_size else ""
        out.append(({"instance_type": None, "tensor_parallel_size": None}, f"unset «instance_type»{also}"))
    elif w.tensor_parallel_size is not None:
        out.append(({"tensor_parallel_size": None}, "unset «tensor_parallel_size»"))
    b = o.budget if o else None
    if b is not None and b.estimated_max_model_len and b.estimated_max_model_len < w.max_model_len:
        out.append(({"max_model_len": b.estimated_max_model_len}, f"«max_model_len» {b.estimated_max_model_len}"))
    if b is not None and b.ok and b.max_concurrency < o.share:
        most = int(b.max_concurrency) * max(1, w.max_replicas)
        if most >= 1:
            out.append(({"concurrency": most}, f"«concurrency» {most}"))
    gpu = w.vendor != "neuron"
    kv = gpu and w.kv_cache_dtype == "auto"
    quant = gpu and w.quantization is None and w.arch.quant is None
    if kv:
        out.append(({"kv_cache_dtype": "fp8"}, "«kv_cache_dtype» fp8"))
    if quant:
        out.append(({"quantization": "fp8"}, "«quantization» fp8 (halves the weights)"))
    if kv and quant:
        out.append(({"kv_cache_dtype": "fp8", "quantization": "fp8"}, "«kv_cache_dtype» fp8 with «quantization» fp8"))
    if w.max_num_seqs is not None:
        out.append(({"max_num_seqs": None}, "unset «max_num_seqs»"))
    if w.vendor != "any" and not w.instance_type:
        out.append(({"vendor": "any"}, "«vendor» any"))
    if w.max_hourly_usd is not None:
        out.append(({"max_hourly_usd": None}, "raise «max_hourly_usd»"))
    return out


def suggestion(words: str, replicas: int, nodes: int, instance_type: str, tp: int, fleet_hourly_usd: float) -> str:
    """A verified change and the fleet it gives: '«kv_cache_dtype» fp8 (1 replica on 1 x g6.xlarge at TP 1,
    $0.8048/h)'."""
    return (f"{words} ({replicas} replica{'s' if replicas > 1 else ''} on {nodes} x {instance_type} at TP {tp}, "
            f"${fleet_hourly_usd:.4g}/h)")


def why_not(w: Workload, opts: list[Option], chosen: Option | None, n_hi: int) -> tuple[str, float]:
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
        return (f"its cheapest fleet, {fleet_words(w, best)}, is above the «max_hourly_usd» cap of "
                f"${w.max_hourly_usd:g}/h"), 0.0
    assert chosen is not None
    return (f"its cheapest fleet, {fleet_words(w, best)} at TP {best.tp}, costs more than "
            f"${chosen.cost:.4g}/h"), 0.0


def no_fit(w: Workload, all_opts: list[Option], fits: list[Option], n_hi: int, vendor_label: str) -> SizingError:
    """The error when no fleet holds the workload within the bounds: the binding constraint first."""
    load = f"{w.model} at {w.max_model_len} tokens x {w.concurrency}"
    where = f"«instance_type» {w.instance_type}" if w.instance_type else f"the {vendor_label} catalog"
    cap = w.max_hourly_usd
    in_bounds = [o for o in fits if o.replicas <= n_hi]
    if in_bounds:  # only the price cap binds
        best = min(in_bounds, key=lambda o: (o.cost, o.replicas))
        return SizingError(f"no fleet from {where} that holds {load} stays within the «max_hourly_usd» cap of "
                           f"${cap:g}/h: the cheapest is {fleet_words(w, best)} at TP {best.tp}; raise "
                           f"«max_hourly_usd» to {math.ceil(best.cost * 100) / 100:g} or lower «concurrency» or "
                           f"«max_model_len»", key="max_hourly_usd")
    if fits:  # more replicas than allowed would hold it
        best = min(fits, key=lambda o: (o.cost, o.replicas))
        also = (f" (that fleet is also above the «max_hourly_usd» cap of ${cap:g}/h)"
                if cap is not None and best.cost > cap else "")
        return SizingError(f"{where} holds {load} only with more replicas than «max_replicas» {n_hi} allows: the "
                           f"cheapest fleet is {fleet_words(w, best)} at TP {best.tp}{also}; raise «max_replicas» "
                           f"to {best.replicas}, or lower «concurrency»"
                           f"{', or raise «max_num_seqs»' if w.max_num_seqs is not None else ''}", key="max_replicas")
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
    return Shortfall(subject, key=binding, candidates=tuple(candidate_changes(w, closest)))
