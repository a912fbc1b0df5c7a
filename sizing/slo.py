"""Planning for a latency target: how many replicas of one instance type and degree serve the load within the SLO.

The memory search (planner._evaluate) gives the fewest replicas whose KV caches hold the users. With a load
(`input_tokens`, `output_tokens` and `concurrency` users or `requests_per_second`) each replica carries its share;
more replicas lower every replica's batch, so TTFT and ITL fall and the rate each must sustain falls. This stage
finds the fewest replicas, from the memory count up, where one replica's predicted p90 TTFT and ITL
(sizing/performance.py) meet `ttft_p90_ms` and `itl_ms` and its share of the rate does not queue, and names the
bound that set the count: memory, TTFT, ITL or throughput. When no count within the bound meets the target, the
problem says which bound misses and by how much at the most replicas allowed (for ITL and TTFT that is the floor
of one request per replica).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .catalog import InstanceType
from .performance import Performance, efficiency, engine_for, predict, usd_per_million
from .weights import resolve_format

BOUNDS = ("memory", "throughput", "ITL", "TTFT")


@dataclass(frozen=True)
class Target:
    """What a model's stack entry (or the CLI) asks of the fleet."""

    input_tokens: int
    output_tokens: int
    concurrency: int | None = None  # users of the whole fleet, in a closed loop
    requests_per_second: float | None = None  # arrivals at the whole fleet
    ttft_p90_ms: float | None = None
    itl_ms: float | None = None

    @property
    def has_slo(self) -> bool:
        return self.ttft_p90_ms is not None or self.itl_ms is not None


@dataclass(frozen=True)
class Outcome:
    """One replica count on one instance type and degree: the per-replica prediction and what it misses."""

    replicas: int
    performance: Performance | None  # None: the replica's memory does not hold its share
    misses: tuple[tuple[str, float, float], ...]  # (bound, predicted, allowed)

    @property
    def ok(self) -> bool:
        return self.performance is not None and not self.misses


def target_of(w) -> Target | None:
    """The workload's load and latency target (sizing/plans.py Workload), or None when it gives no request shape."""
    if w.input_tokens is None or w.output_tokens is None:
        return None
    return Target(w.input_tokens, w.output_tokens, None if w.requests_per_second else w.concurrency,
                  w.requests_per_second, w.ttft_p90_ms, w.itl_ms)


def replica_load(t: Target, replicas: int) -> tuple[int | None, float | None]:
    """(users, requests/s) one of `replicas` replicas carries."""
    if t.requests_per_second is not None:
        return None, t.requests_per_second / replicas
    return math.ceil((t.concurrency or 1) / replicas), None


def outcome(t: Target, inst: InstanceType, arch, budget_at: Callable[[int], object | None], replicas: int,
            quantization: str | None) -> Outcome:
    """One replica of `replicas` at its share of the load. `budget_at(share)` is the memory budget of one replica
    holding `share` users (None when it cannot): on Neuron the compiled batch is the share."""
    users, rate = replica_load(t, replicas)
    share = users if users is not None else 1
    for _ in range(4):  # open loop: the batch the rate needs (Little's law) must fit the replica's memory
        b = budget_at(share)
        if b is None:
            return Outcome(replicas, None, (("memory", share, 0),))
        e = engine_for(arch, inst.accelerator, b, resolve_format(arch, b.dtype, quantization),
                       efficiency(inst.accelerator, inst.name), inst)
        p = predict(e, input_tokens=t.input_tokens, output_tokens=t.output_tokens, concurrency=users,
                    requests_per_second=rate)
        need = math.ceil(p.concurrency)
        if users is not None or not inst.accelerator.is_neuron or need <= share:
            break
        share = need
    misses = []
    if p.queued:
        misses.append(("throughput", rate or users, p.max_requests_per_second if rate else p.max_concurrency))
    if t.itl_ms is not None and p.itl_ms > t.itl_ms:
        misses.append(("ITL", p.itl_ms, t.itl_ms))
    if t.ttft_p90_ms is not None and p.ttft_p90_ms > t.ttft_p90_ms:
        misses.append(("TTFT", p.ttft_p90_ms, t.ttft_p90_ms))
    return Outcome(replicas, p, tuple(misses))


def fewest_replicas(t: Target, inst: InstanceType, arch, budget_at, n_mem: int, n_hi: int,
                    quantization: str | None) -> tuple[Outcome, str]:
    """The fewest replicas from `n_mem` (the memory count) to `n_hi` that meet the target, and the bound that set
    the count; when none does, the outcome at `n_hi` (its misses say by how much) and the bound that misses."""
    top = max(n_mem, n_hi)
    last = outcome(t, inst, arch, budget_at, top, quantization)
    if not last.ok:
        return last, (last.misses[0][0] if last.misses else "memory")
    first = outcome(t, inst, arch, budget_at, n_mem, quantization)
    if first.ok:
        return first, "memory"
    lo, hi = n_mem, top  # fails at lo, meets at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if outcome(t, inst, arch, budget_at, mid, quantization).ok:
            hi = mid
        else:
            lo = mid
    below = outcome(t, inst, arch, budget_at, lo, quantization)
    return outcome(t, inst, arch, budget_at, hi, quantization), below.misses[0][0] if below.misses else "memory"


def miss_words(o: Outcome) -> str:
    """`at 100 replicas (0.2 requests/s each): ITL 41.2 ms > «itl_ms» 30 (misses by 11.2 ms)`, one per bound
    missed."""
    words = []
    for bound, got, allowed in o.misses:
        if bound == "ITL":
            words.append(f"ITL {got:.1f} ms > «itl_ms» {allowed:g} (misses by {got - allowed:.1f} ms)")
        elif bound == "TTFT":
            words.append(f"p90 TTFT {got:.0f} ms > «ttft_p90_ms» {allowed:g} (misses by {got - allowed:.0f} ms)")
        elif bound == "throughput":
            words.append(f"a replica sustains {allowed:.3g} before requests queue, its share is {got:.3g}")
        else:
            words.append(f"one replica's memory cannot hold {got:g} requests")
    per = f"at {o.replicas} replica{'s' if o.replicas > 1 else ''}"
    if o.performance is not None:
        p = o.performance
        per += f" ({p.requests_per_second:.3g} requests/s, {p.concurrency:.3g} at once, each)"
    return f"{per}: " + "; ".join(words)


def summary(f: dict, replicas: int, rejected=()) -> str:
    """The plan's sentence on its load: latency against the target, throughput, $ per million tokens, the bound
    that set the replica count, and what the next cheaper instance type misses (settings as «key»)."""
    load = (f"{f['requests_per_second']:g} requests/s" if f["requests_per_second"] else
            f"{f['concurrency']} concurrent users")
    r = f["replica"]
    slo = []
    for key, got, unit in (("ttft_p90_ms", f["ttft_p90_ms"], "p90 TTFT"), ("itl_ms", f["itl_ms"], "ITL")):
        target = f[f"{key}_target"]
        slo.append(f"{unit} {got:g} ms" + (f" (target «{key}» {target:g})" if target is not None else ""))
    who = "the one replica" if replicas == 1 else f"each of the {replicas} replicas"
    text = (f"At {load} of {f['input_tokens']} + {f['output_tokens']} tokens {who} runs "
            f"{r['concurrency']:.3g} requests at once: {', '.join(slo)}; the fleet makes "
            f"{f['output_tokens_per_s']:,.0f} output tokens/s and sustains {f['max_requests_per_second']:.3g} "
            f"requests/s before queueing, ${f['usd_per_million_output_tokens']:.3g} per million output tokens "
            f"(${f['usd_per_million_input_tokens']:.3g} per million input). The replica count is set by "
            f"{f['binding']} (predicted: sizing/performance.py, errors in the README).")
    slo_rejected = [x for x in rejected if "misses by" in x.template or "before requests queue" in x.template]
    if slo_rejected:
        nearest = max(slo_rejected, key=lambda x: x.hourly_usd)
        text += f" The next cheaper instance type that holds it in memory, {nearest.instance_type}, {nearest.template}."
    return text


def fleet_figures(t: Target, o: Outcome, fleet_hourly_usd: float, bound: str) -> dict:
    """What the plan reports: one replica's prediction, the fleet's throughput and $ per million tokens."""
    p = o.performance
    out_tps = p.output_tokens_per_s * o.replicas
    in_tps = p.input_tokens_per_s * o.replicas
    return {
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "concurrency": t.concurrency if t.requests_per_second is None else None,
        "requests_per_second": t.requests_per_second,
        "ttft_p90_ms_target": t.ttft_p90_ms,
        "itl_ms_target": t.itl_ms,
        "binding": bound,
        "replica": p.to_dict(),
        "ttft_ms": round(p.ttft_ms, 1),
        "ttft_p90_ms": round(p.ttft_p90_ms, 1),
        "itl_ms": round(p.itl_ms, 2),
        "output_tokens_per_s": round(out_tps, 1),
        "input_tokens_per_s": round(in_tps, 1),
        "max_requests_per_second": round(p.max_requests_per_second * o.replicas, 3),
        "usd_per_million_output_tokens": _round(usd_per_million(fleet_hourly_usd, out_tps)),
        "usd_per_million_input_tokens": _round(usd_per_million(fleet_hourly_usd, in_tps)),
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


KEYS = {"ITL": "itl_ms", "TTFT": "ttft_p90_ms", "throughput": "requests_per_second"}


def unmet(w, options: list, where: str):
    """The error when memory holds the model somewhere but no fleet within the replica bound meets the target: the
    closest option and what it misses by, naming the setting that binds; None when memory is what fails."""
    from .errors import SizingError

    if any(o.problem is None for o in options):
        return None
    missed = [o for o in options if o.outcome is not None and o.outcome.misses]
    if not missed:
        return None
    closest = min(missed, key=lambda o: (max(got / allowed for _, got, allowed in o.outcome.misses if allowed),
                                         o.instance.hourly_usd))
    bound = closest.outcome.misses[0][0]
    key = KEYS.get(bound, "max_replicas")
    if key == "requests_per_second" and w.requests_per_second is None:
        key = "concurrency"
    return SizingError(f"no fleet from {where} meets the target at this load within «max_replicas» {w.max_replicas}; "
                       f"closest is {closest.instance.name} at TP {closest.tp}, {miss_words(closest.outcome)}; relax "
                       f"«{key}», or allow more replicas, or a faster accelerator («vendor» any)", key=key)
