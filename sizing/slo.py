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
from .performance import Performance, engine_for, predict, usd_per_million
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
        e = engine_for(arch, inst.accelerator, b, resolve_format(arch, b.dtype, quantization))
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
    """`ITL 41.2 ms > «itl_ms» 30 (misses by 11.2 ms)`, one per bound missed."""
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
    return f"{per}: " + "; ".join(words)


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
