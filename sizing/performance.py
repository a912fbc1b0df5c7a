"""Predicted latency and throughput of one vLLM replica: TTFT, ITL, output tokens/s, the request rate it sustains.

A roofline per engine step, from the bytes and FLOPs the sizing already knows, at tensor-parallel degree t:

    bytes  = weight bytes per rank (MoE: the experts the step's tokens touch)   [weights.weight_bytes]
             + decoding sequences x KV bytes per token per rank x context         [memory.kv_layout]
    flops  = 2 x active parameters per rank x tokens + attention over the context
    step   = max(bytes / (bandwidth x memory eff.), flops / (peak x compute eff.))
             + 2 x layers all-reduces of the step's activations over the interconnect (t > 1) + step_ms

The three efficiency factors are fitted per accelerator (per vendor where an accelerator has too few rows) to
published runs in data/performance.yaml; rows marked held-out never touch the fit and measure the error.

A closed loop of C users (what `vllm bench serve --max-concurrency C` runs): every step decodes the C running
requests and, on average, C x input / output prompt tokens of the requests that start; ITL is that step.
TTFT is half a step of waiting plus the steps that prefill the prompt in chunks of max_num_batched_tokens; its p90
adds the prompts that arrive together (Poisson at the request rate, 90th percentile). An open loop of R requests/s
runs at the concurrency C = R x end-to-end latency (Little's law); past the largest C the KV cache and
max_num_seqs allow, requests queue: that rate is the one the replica sustains.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import asdict, dataclass, replace
from typing import Any

from . import catalog
from .architecture import Architecture, Role
from .catalog import Accelerator, InstanceType
from .errors import SizingError
from .kv_cache import AttentionSpec, CacheContext
from .weights import DTYPE_BYTES, WeightFormat, tensor_bytes

PERFORMANCE_FILE = "performance.yaml"
METRICS = ("ttft_ms", "ttft_p90_ms", "itl_ms", "output_tokens_per_s", "requests_per_second", "e2e_ms")


@functools.cache
def performance_data() -> dict[str, Any]:
    return catalog.load_yaml(PERFORMANCE_FILE)


@dataclass(frozen=True)
class Efficiency:
    """Fractions of the roofline a real engine reaches on one accelerator (fitted, data/performance.yaml)."""

    memory: float
    compute: float
    step_ms: float
    fitted_on: str  # the accelerator key or vendor whose rows fitted it


CALIBRATION_PATH = catalog.DATA / "calibration.yaml"


def _read_calibration_file() -> dict[str, Any]:
    import yaml

    if not CALIBRATION_PATH.exists():
        return {}
    return yaml.safe_load(CALIBRATION_PATH.read_text(encoding="utf-8")) or {}


@functools.cache
def calibrations() -> dict[str, Any]:
    """A team's own measured runs, fitted per instance type (`python -m bench <stack> --save-calibration`)."""
    return _read_calibration_file().get("calibrations") or {}


def efficiency(accel: Accelerator, instance_type: str | None = None) -> Efficiency:
    """The factors for `accel`: a calibration of this instance type if one was saved, else the published fit."""
    cal = calibrations().get(instance_type) if instance_type else None
    if cal and cal.get("accelerator") == accel.key:
        return Efficiency(cal["memory"], cal["compute"], cal["step_ms"], f"calibration of {instance_type}")
    table = performance_data()["efficiency"]
    for key in (accel.key, accel.vendor):
        if key in table:
            return Efficiency(fitted_on=key, **table[key])
    raise SizingError(f"no fitted efficiency for {accel.name} (data/performance.yaml efficiency)")


@dataclass(frozen=True)
class Engine:
    """What one replica runs: the shapes and the engine limits that bound its batch."""

    arch: Architecture
    accel: Accelerator
    tp: int
    fmt: WeightFormat
    kv_bytes: int  # bytes per KV element (2 for bf16/fp16, 1 for an fp8 KV cache)
    max_num_seqs: int
    max_num_batched_tokens: int
    kv_capacity_tokens: int  # KV tokens the replica holds (memory budget); bounds the concurrency
    efficiency: Efficiency
    link: tuple[float, float] = (0.0, 0.0)  # the all-reduce path: (GB/s one direction, latency us); see link_for


@dataclass(frozen=True)
class Performance:
    """The prediction for one replica at one load (times in ms)."""

    concurrency: float  # requests in flight per replica
    ttft_ms: float
    ttft_p90_ms: float
    itl_ms: float
    e2e_ms: float
    output_tokens_per_s: float  # one replica
    input_tokens_per_s: float
    requests_per_second: float  # one replica, at this load
    max_requests_per_second: float  # one replica, before requests queue
    max_concurrency: int  # requests in flight before requests queue (KV cache, max_num_seqs)
    queued: bool  # the load exceeds what the replica sustains
    efficiency_fitted_on: str

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


# --- the roofline of one step ------------------------------------------------------------------------------


def _per_rank(accel: Accelerator, tp: int) -> tuple[float, float]:
    """(bytes/s, FLOP/s) one rank has: a GPU, or one NeuronCore (a Neuron device's figures over its cores)."""
    share = accel.cores if accel.is_neuron else 1
    return accel.bandwidth_gbps * 1e9 / share, accel.bf16_tflops * 1e12 / share


def _peak_flops(e: Engine) -> float:
    _, flops = _per_rank(e.accel, e.tp)
    fp8 = e.fmt.scheme.startswith("fp8") or e.fmt.scheme == "int8-channel"
    if fp8 and e.accel.fp8_tflops:
        return flops * e.accel.fp8_tflops / e.accel.bf16_tflops  # fp8 GEMMs on fp8 tensor cores
    return flops


@functools.lru_cache(maxsize=256)
def _shapes(arch: Architecture, fmt: WeightFormat, tp: int, kv_bytes: int) -> tuple[float, float, float, tuple]:
    """Per rank: (dense weight bytes, expert weight bytes, active matmul parameters, caches), where caches holds one
    (KV bytes per token, window or None, fixed state bytes per sequence) per cache vLLM registers (kv_cache.py)."""
    dense = expert = 0.0
    params = 0.0
    for t in arch.tensors:
        b = tensor_bytes(t, fmt, tp)
        if t.role is Role.EXPERTS:
            expert += b
        else:
            dense += b
        tied_head = t.role is Role.EMBEDDING and arch.tie_word_embeddings  # the LM head's matmul reads it
        if t.role in (Role.ATTENTION, Role.MLP, Role.LM_HEAD) or tied_head:
            params += t.parameters / tp
        elif t.role is Role.EXPERTS and arch.moe:
            params += t.parameters / tp * arch.moe.experts_per_token / arch.moe.num_experts
    ctx = CacheContext(tensor_parallel_size=tp, kv_bytes=kv_bytes, dtype_bytes=DTYPE_BYTES[fmt.dtype], block_size=16)
    caches = []
    for cache in arch.caches:
        spec = cache.spec(ctx)
        if isinstance(spec, AttentionSpec):
            caches.append((spec.page_bytes / spec.block_size, cache.window, 0.0))
        else:  # a recurrent state: read whole every step, whatever the length
            caches.append((0.0, None, float(spec.page_bytes)))
    return dense, expert, params, tuple(caches)


def step_ms(e: Engine, decodes: float, context: float, prefill: float) -> float:
    """One engine step that decodes `decodes` sequences at `context` tokens each and prefills `prefill` tokens."""
    arch = e.arch
    dense, expert, params, caches = _shapes(arch, e.fmt, e.tp, e.kv_bytes)
    tokens = decodes + prefill
    if arch.moe and expert:
        touched = 1 - (1 - arch.moe.experts_per_token / arch.moe.num_experts) ** max(tokens, 1)
        expert *= touched
    kv_read = decodes * sum(per_token * (min(context, w) if w else context) + state for per_token, w, state in caches)
    attended = sum(min(context, w) if w else context for per_token, w, _ in caches if per_token)
    attention_layers = sum(1 for per_token, _, _ in caches if per_token)
    heads = math.ceil(arch.num_heads / e.tp)
    attn_flops = 4 * heads * arch.head_dim * (decodes * attended + prefill * prefill / 2 * attention_layers)
    flops = 2 * params * tokens + attn_flops
    bw, _ = _per_rank(e.accel, e.tp)
    eff = e.efficiency
    t_mem = (dense + expert + kv_read) / (bw * eff.memory)
    t_flop = flops / (_peak_flops(e) * eff.compute)
    t_comm = 0.0
    if e.tp > 1:
        gbps, latency_us = e.link
        message = tokens * arch.hidden_size * DTYPE_BYTES[e.fmt.dtype]
        per = latency_us * 1e-6 + 2 * (e.tp - 1) / e.tp * message / (gbps * 1e9)
        t_comm = 2 * arch.num_layers * per
    return (max(t_mem, t_flop) + t_comm) * 1e3 + eff.step_ms


# --- the serving loop --------------------------------------------------------------------------------------


def _poisson_p90(mean: float) -> int:
    """The 90th percentile of a Poisson count with this mean."""
    k, p, total = 0, math.exp(-mean), math.exp(-mean)
    while total < 0.9 and k < 10_000:
        k += 1
        p *= mean / k
        total += p
    return k


def _closed_loop(e: Engine, concurrency: float, input_tokens: int,
                 output_tokens: int) -> tuple[float, float, float, float]:
    """(ttft p50, ttft p90, itl, e2e) in ms at `concurrency` requests in flight."""
    c = max(concurrency, 1e-9)
    context = input_tokens + output_tokens / 2
    budget = e.max_num_batched_tokens
    arriving = min(c * input_tokens / max(output_tokens, 1), budget)  # prompt tokens per step, on average
    itl = step_ms(e, c, context, arriving)
    chunk = max(budget - (c - 1), 1)
    chunks = math.ceil(input_tokens / chunk)
    first = min(input_tokens, chunk)
    prefill = step_ms(e, max(c - 1, 0), context, first + arriving * (c - 1) / c)
    if chunks > 1:
        prefill += (chunks - 1) * step_ms(e, max(c - 1, 0), context, chunk)
    ttft = itl / 2 + prefill
    e2e = ttft + (output_tokens - 1) * itl
    rate = c / e2e  # requests per ms
    together = _poisson_p90(rate * ttft) if c > 1 else 0
    alone = step_ms(e, 0, 0, input_tokens) - e.efficiency.step_ms
    ttft_p90 = ttft + min(together, c - 1) * alone
    return ttft, ttft_p90, itl, e2e


def max_concurrency(e: Engine, input_tokens: int, output_tokens: int) -> int:
    return max(1, min(e.max_num_seqs, e.kv_capacity_tokens // (input_tokens + output_tokens)))


def predict(e: Engine, *, input_tokens: int, output_tokens: int, concurrency: float | None = None,
            requests_per_second: float | None = None) -> Performance:
    """The replica at a closed-loop `concurrency`, or at an open-loop `requests_per_second` (per replica)."""
    if input_tokens < 1 or output_tokens < 1:
        raise SizingError("«input_tokens» and «output_tokens» must be at least 1", key="input_tokens")
    if (concurrency is None) == (requests_per_second is None):
        raise SizingError("give the load as «concurrency» or as «requests_per_second», one of them", key="load")
    top = max_concurrency(e, input_tokens, output_tokens)
    _, _, _, e2e_top = _closed_loop(e, top, input_tokens, output_tokens)
    max_rps = top / e2e_top * 1e3
    queued = False
    if requests_per_second is not None:
        if requests_per_second <= 0:
            raise SizingError(f"«requests_per_second» must be positive (got {requests_per_second})",
                              key="requests_per_second")
        if requests_per_second >= max_rps:
            c, queued = float(top), True
        else:  # Little's law: C = R x e2e(C), a fixed point; e2e grows with C, so bisect
            lo, hi = 0.0, float(top)
            for _ in range(60):
                mid = (lo + hi) / 2
                if mid < requests_per_second * _closed_loop(e, mid, input_tokens, output_tokens)[3] / 1e3:
                    lo = mid
                else:
                    hi = mid
            c = hi
    else:
        if concurrency <= 0:
            raise SizingError(f"«concurrency» must be positive (got {concurrency})", key="concurrency")
        c = float(concurrency)
        if c > top:  # the engine runs `top` at once; the rest wait for a slot
            queued = True
    running = min(c, top)
    ttft, ttft_p90, itl, e2e = _closed_loop(e, running, input_tokens, output_tokens)
    if queued and requests_per_second is None:  # closed loop beyond capacity: each waits for (c - top) / top requests
        wait = (c - top) / top * e2e
        ttft, ttft_p90, e2e = ttft + wait, ttft_p90 + wait, e2e + wait
    rps = running / e2e * 1e3
    return Performance(
        concurrency=c, ttft_ms=ttft, ttft_p90_ms=ttft_p90, itl_ms=itl, e2e_ms=e2e,
        output_tokens_per_s=rps * output_tokens, input_tokens_per_s=rps * input_tokens, requests_per_second=rps,
        max_requests_per_second=max_rps, max_concurrency=top, queued=queued,
        efficiency_fitted_on=e.efficiency.fitted_on,
    )


def usd_per_million(hourly_usd: float, tokens_per_s: float) -> float | None:
    """$ per million tokens when `hourly_usd` buys `tokens_per_s` (the whole cost charged to those tokens)."""
    if tokens_per_s <= 0:
        return None
    return hourly_usd / (tokens_per_s * 3600) * 1e6


# --- building the engine from a memory budget --------------------------------------------------------------


def link_for(inst: InstanceType | None, accel: Accelerator) -> tuple[float, float]:
    """(GB/s one direction, latency us) of the all-reduce path on `inst` (instances.yaml interconnect and p2p):
    NVLink; PCIe with P2P; PCIe without, through host memory at half the link; NeuronLink (also between the
    NeuronCores of one device)."""
    links = performance_data()["links"].get(accel.key, {})
    kind = inst.interconnect if inst is not None else "none"
    if accel.is_neuron:
        kind = "neuron"
    elif kind == "none":  # no tensor parallelism inside the instance; what its accelerator would have
        kind = "nvlink" if "nvlink" in links else "pcie"
    gbps = links.get(kind, 0.0)
    if kind == "pcie" and not (inst is not None and inst.p2p):
        gbps /= 2
    return gbps, links.get("latency_us", 0.0)


def home_instance(accel: Accelerator, tp: int) -> InstanceType | None:
    """The cheapest instance type per replica with enough of `accel` for degree `tp`."""
    devices = math.ceil(tp / accel.cores)
    homes = [i for i in catalog.instances().values() if i.accelerator.key == accel.key and i.count >= devices]
    return min(homes, key=lambda i: i.hourly_usd / (i.count // devices), default=None)


def engine_for(arch: Architecture, accel: Accelerator, budget, fmt: WeightFormat, eff: Efficiency | None = None,
               inst: InstanceType | None = None) -> Engine:
    """The replica a memory budget describes (memory.GpuBudget or neuron.NeuronBudget) on `inst` (default: the
    cheapest instance type that holds it).

    vllm-neuron compiles the whole prompt in one context-encoding pass (no chunked prefill), so its prefill budget is
    the sequence length; on GPUs it is max_num_batched_tokens.
    """
    inst = inst or home_instance(accel, budget.tensor_parallel_size)
    kv_bytes = 1 if getattr(budget, "kv_cache_dtype", "auto").startswith("fp8") else DTYPE_BYTES[budget.dtype]
    batched = budget.max_model_len if accel.is_neuron else budget.max_num_batched_tokens
    return Engine(arch=arch, accel=accel, tp=budget.tensor_parallel_size, fmt=fmt, kv_bytes=kv_bytes,
                  max_num_seqs=budget.max_num_seqs, max_num_batched_tokens=batched,
                  kv_capacity_tokens=max(budget.kv_cache_tokens, 0),
                  efficiency=eff or efficiency(accel, inst.name if inst else None), link=link_for(inst, accel))


def replica_figures(arch: Architecture, accel: Accelerator, budget, quantization: str | None, *, input_tokens: int,
                    output_tokens: int, concurrency: int | None = None,
                    requests_per_second: float | None = None) -> dict[str, Any]:
    """The CLI's `performance` object for one replica of a budget: latency, tokens/s, and $ per million tokens on
    the cheapest instance type with enough of these accelerators (its price split over the replicas it holds)."""
    from .weights import resolve_format

    devices = math.ceil(budget.tensor_parallel_size / accel.cores)
    home = home_instance(accel, budget.tensor_parallel_size)
    e = engine_for(arch, accel, budget, resolve_format(arch, budget.dtype, quantization), inst=home)
    p = predict(e, input_tokens=input_tokens, output_tokens=output_tokens, concurrency=concurrency,
                requests_per_second=requests_per_second)
    usd = home.hourly_usd / (home.count // devices) if home else None
    out = {k: round(v, 3) if isinstance(v, float) else v for k, v in p.to_dict().items()}
    out.update(instance_type=home.name if home else None, replica_hourly_usd=round(usd, 4) if usd else None,
               usd_per_million_output_tokens=_round4(usd_per_million(usd, p.output_tokens_per_s)) if usd else None,
               usd_per_million_input_tokens=_round4(usd_per_million(usd, p.input_tokens_per_s)) if usd else None)
    return out


def _round4(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


# --- the published measurements, the fit and its error ------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    id: str
    split: str  # fit | held-out
    accelerator: str
    model: str
    tp: int
    input_tokens: int
    output_tokens: int
    concurrency: int | None
    measured: tuple[tuple[str, float], ...]
    engine: str
    source: str
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    instance_type: str | None = None  # the EC2 type whose interconnect the run had


def measurements() -> list[Measurement]:
    out = []
    for row in performance_data()["measurements"]:
        if row["split"] not in ("fit", "held-out"):
            raise SizingError(f"performance.yaml {row['id']}: split '{row['split']}' is not fit or held-out")
        unknown = set(row["measured"]) - set(METRICS)
        if unknown:
            raise SizingError(f"performance.yaml {row['id']}: unknown metrics {sorted(unknown)}; "
                              f"known: {', '.join(METRICS)}")
        out.append(Measurement(
            id=row["id"], split=row["split"], accelerator=row["accelerator"], model=row["model"], tp=row["tp"],
            input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
            concurrency=row.get("concurrency"), measured=tuple(row["measured"].items()), engine=row["engine"],
            source=row["source"],
            quantization=row.get("quantization"), kv_cache_dtype=row.get("kv_cache_dtype", "auto"),
            instance_type=row.get("instance_type"),
        ))
    return out


def _row_engine(m: Measurement, eff: Efficiency) -> Engine:
    """The replica a published run used, with the engine defaults of its vLLM line (memory.gpu_budget) on GPUs.

    Neuron runs (vllm-neuron, transformers-neuronx) compile a static batch of `concurrency` sequences of the run's
    length, so their KV holds exactly that; their TP need not divide the heads (transformers-neuronx pads them).
    """
    from .architecture import from_config
    from .memory import gpu_budget
    from .weights import resolve_format

    cfg, _ = catalog.load_model_config(m.model)
    arch = from_config(cfg, m.model)
    accel = catalog.accelerator(m.accelerator)
    inst = catalog.instance(m.instance_type) if m.instance_type else None
    length = m.input_tokens + m.output_tokens
    if accel.is_neuron:
        dtype = "bfloat16" if arch.torch_dtype == "float32" else arch.torch_dtype
        seqs = math.ceil(m.concurrency or 1)
        return Engine(arch=arch, accel=accel, tp=m.tp, fmt=resolve_format(arch, dtype), kv_bytes=DTYPE_BYTES[dtype],
                      max_num_seqs=seqs, max_num_batched_tokens=length, kv_capacity_tokens=seqs * length,
                      efficiency=eff,
                      link=link_for(inst, accel))
    b = gpu_budget(arch, accel, max_model_len=length, tensor_parallel_size=m.tp, quantization=m.quantization,
                   kv_cache_dtype=m.kv_cache_dtype)
    return engine_for(arch, accel, b, resolve_format(arch, b.dtype, m.quantization), eff, inst)


@functools.lru_cache(maxsize=None)
def _row_engine_cached(m: Measurement) -> Engine:
    return _row_engine(m, Efficiency(1.0, 1.0, 0.0, "none"))


def predicted_metrics(m: Measurement, eff: Efficiency) -> dict[str, float]:
    e = replace(_row_engine_cached(m), efficiency=eff)
    if m.concurrency is None:  # a saturated run (request rate inf): the rate the replica sustains
        p = predict(e, input_tokens=m.input_tokens, output_tokens=m.output_tokens, requests_per_second=1e9)
    else:
        p = predict(e, input_tokens=m.input_tokens, output_tokens=m.output_tokens, concurrency=m.concurrency)
    return {"ttft_ms": p.ttft_ms, "ttft_p90_ms": p.ttft_p90_ms, "itl_ms": p.itl_ms, "e2e_ms": p.e2e_ms,
            "output_tokens_per_s": p.output_tokens_per_s, "requests_per_second": p.requests_per_second}


def fit_group(m: Measurement) -> str:
    """The efficiency key a row fits: its accelerator when that has min_fit_rows fit rows, else its vendor."""
    rows = [r for r in measurements() if r.split == "fit" and r.accelerator == m.accelerator]
    if len(rows) >= performance_data()["min_fit_rows"]:
        return m.accelerator
    return catalog.accelerator(m.accelerator).vendor


def fit() -> dict[str, dict[str, float]]:
    """Least squares on log(predicted / measured) over the fit rows of each group, on a grid."""
    rows = [m for m in measurements() if m.split == "fit"]
    groups: dict[str, list[Measurement]] = {}
    for m in rows:
        groups.setdefault(fit_group(m), []).append(m)
        vendor = catalog.accelerator(m.accelerator).vendor
        groups.setdefault(vendor, [])
        if m not in groups[vendor]:
            groups[vendor].append(m)
    return {key: fit_rows(members) for key, members in sorted(groups.items())}


def fit_rows(members: list[Measurement], weights: list[float] | None = None) -> dict[str, float]:
    """The factors that minimise the (weighted) squared log error over `members`, on a grid."""
    weights = weights or [1.0] * len(members)
    memory = [round(0.15 + 0.05 * i, 2) for i in range(17)]  # 0.15 .. 0.95
    compute = [round(0.01 * 1.35 ** i, 4) for i in range(17)]  # 0.01 .. ~1.2
    compute = [c for c in compute if c <= 1.0]
    step = [0.0, 0.5, 1, 2, 3, 5, 8, 12, 20]
    best = None
    for mem in memory:
        for comp in compute:
            for s in step:
                eff = Efficiency(mem, comp, s, "fit")
                loss = 0.0
                for m, weight in zip(members, weights):
                    pred = predicted_metrics(m, eff)
                    loss += weight * sum(math.log(pred[k] / v) ** 2 for k, v in m.measured)
                if best is None or loss < best[0]:
                    best = (loss, mem, comp, s)
    return {"memory": best[1], "compute": best[2], "step_ms": best[3]}


def save_calibration(instance_type: str, rows: list[Measurement], source: str, date: str) -> dict[str, Any]:
    """Fit `rows` (a team's measured run on `instance_type`) together with the published fit rows of its
    accelerator, the team's rows weighing 10 times as much (they are this instance type, this engine; the published
    ones only keep the factors a run does not constrain sensible), and record the factors for that instance type in
    data/calibration.yaml, rows and source kept."""
    import yaml

    accel = catalog.instance(instance_type).accelerator
    published = [m for m in measurements() if m.split == "fit" and m.accelerator == accel.key]
    factors = fit_rows(list(rows) + published, [10.0] * len(rows) + [1.0] * len(published))
    doc = _read_calibration_file()
    doc.setdefault("calibrations", {})[instance_type] = {
        "accelerator": accel.key, **factors, "source": source, "date": date,
        "rows": [{"model": m.model, "tp": m.tp, "input_tokens": m.input_tokens, "output_tokens": m.output_tokens,
                  "concurrency": m.concurrency, "measured": dict(m.measured), "quantization": m.quantization,
                  "kv_cache_dtype": m.kv_cache_dtype} for m in rows],
    }
    header = ("# Calibrations: a team's own benchmark runs (python -m bench <stack> --save-calibration), fitted per\n"
              "# instance type with the published fit rows of its accelerator (sizing/performance.py reads these\n"
              "# factors for that instance type before the published ones). Each names its results.json and date.\n")
    CALIBRATION_PATH.write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    calibrations.cache_clear()
    return doc["calibrations"][instance_type]


def errors(split: str = "held-out") -> list[tuple[Measurement, str, float, float]]:
    """(row, metric, measured, predicted) for every metric of every row of `split`, with the stored factors."""
    out = []
    for m in measurements():
        if m.split != split:
            continue
        pred = predicted_metrics(m, efficiency(catalog.accelerator(m.accelerator)))
        out.extend((m, k, v, pred[k]) for k, v in m.measured)
    return out


def error_summary(split: str = "held-out") -> dict[str, dict[str, float]]:
    """Per accelerator: median and worst |predicted / measured - 1| over the metrics of the `split` rows."""
    by: dict[str, list[float]] = {}
    for m, _, measured, predicted in errors(split):
        by.setdefault(m.accelerator, []).append(abs(predicted / measured - 1))
    return {k: {"rows_metrics": len(v), "median": statistics.median(v), "worst": max(v)} for k, v in sorted(by.items())}


def _main(argv: list[str] | None = None) -> int:
    """python -m sizing.performance fit | report"""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["fit"]:
        import re

        fitted = fit()
        path = catalog.DATA / PERFORMANCE_FILE
        text = path.read_text(encoding="utf-8")
        lines = "".join(f"  {k}: {{memory: {v['memory']}, compute: {v['compute']}, step_ms: {v['step_ms']}}}\n"
                        for k, v in fitted.items())
        text = re.sub(r"(?m)^efficiency:\n(?:  .*\n)+", "efficiency:\n" + lines, text)
        path.write_text(text, encoding="utf-8")
        print(lines, end="")
        return 0
    if args[:1] == ["report"]:
        for split in ("fit", "held-out"):
            print(f"== {split}")
            for m, k, v, p in errors(split):
                print(f"  {m.id:48s} {k:20s} measured {v:10.2f} predicted {p:10.2f} error {p / v - 1:+.0%}")
            for acc, s in error_summary(split).items():
                print(f"  {acc:12s} median {s['median']:.0%} worst {s['worst']:.0%} ({s['rows_metrics']} values)")
        return 0
    print("usage: python -m sizing.performance fit | report", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main())
