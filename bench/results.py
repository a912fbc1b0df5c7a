"""From inference-perf's output to the benchmark's results: per concurrency level, p50/p90/p99, errors, cost, knee.

inference-perf prints every stage's report as JSON between `=== START_STAGE_<n> ===` and `=== END_STAGE_<n> ===`
on stdout (inference_perf/main.py), so a local run and the in-cluster Job's log are read by the same parser: the
Job needs no volume or bucket to hand its results back.

Metric definitions (seconds unless stated; each per request, then p50/p90/p99 over the level's requests):
- ttft: time to first token (first streamed chunk minus send time).
- itl: inter-token latency, a request's (last token time - first token time) / (output tokens - 1), what LLMPerf
  (seed 004) calls inter_token_latency and vLLM's vllm:request_time_per_output_token_seconds measures.
- e2e: end-to-end request latency.
- throughput: a request's output tokens / its end-to-end latency (LLMPerf's request_output_throughput_token_per_s),
  from inference-perf's normalized time per output token: p50 = 1/NTPOT p50, p90 = 1/NTPOT p10, p99 = 1/NTPOT p1.
- output_tokens_per_s: the level's aggregate output tokens per second (server-reported usage), the number that
  pays for the instance; cost figures use it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .workload import Workload

START = re.compile(r"^=== START_STAGE_(\d+) ===\s*$")
END = re.compile(r"^=== END_STAGE_(\d+) ===\s*$")
STAGE_EVENT = re.compile(r"Stage (\d+) - run (started|completed)")

KNEE_GAIN = 0.10  # throughput that grows by less than this from one level to the next has stopped rising
SCHEMA = "llm-eks/bench/v1"


class ResultsError(RuntimeError):
    """The generator's output holds no usable stage report."""


def stage_reports(lines: Iterable[str]) -> dict[int, dict[str, Any]]:
    """Every stage report printed between the markers, by stage index."""
    reports: dict[int, dict[str, Any]] = {}
    current: int | None = None
    buf: list[str] = []
    for line in lines:
        line = line.rstrip("\n")
        if current is None:
            m = START.match(line)
            if m:
                current, buf = int(m.group(1)), []
            continue
        m = END.match(line)
        if m and int(m.group(1)) == current:
            try:
                reports[current] = json.loads("\n".join(buf))
            except json.JSONDecodeError as exc:
                raise ResultsError(f"stage {current}: report is not JSON ({exc})") from None
            current = None
        else:
            buf.append(line)
    return reports


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p90: float
    p99: float
    mean: float

    @classmethod
    def of(cls, summary: dict[str, float] | None) -> "Percentiles":
        if not summary:
            return cls(math.nan, math.nan, math.nan, math.nan)
        return cls(summary["median"], summary["p90"], summary["p99"], summary["mean"])

    @classmethod
    def inverse_of(cls, summary: dict[str, float] | None) -> "Percentiles":
        """The percentiles of 1/x from those of x (a decreasing map swaps tails: p90 of 1/x is 1/p10 of x)."""
        if not summary:
            return cls(math.nan, math.nan, math.nan, math.nan)
        inv = lambda v: 1.0 / v if v and v > 0 else math.nan  # noqa: E731
        # The mean of 1/x is not 1/mean(x): left unknown (null in the JSON).
        return cls(inv(summary["median"]), inv(summary["p10"]), inv(summary["p1"]), math.nan)

    def scaled(self, k: float) -> "Percentiles":
        return Percentiles(self.p50 * k, self.p90 * k, self.p99 * k, self.mean * k)


@dataclass(frozen=True)
class Level:
    concurrency: int
    requests: int
    successes: int
    errors: int
    duration_s: float
    ttft: Percentiles
    itl: Percentiles
    e2e: Percentiles
    throughput: Percentiles  # per request, output tokens/s
    output_tokens_per_s: float
    total_tokens_per_s: float
    requests_per_s: float
    prompt_tokens_mean: float
    output_tokens_mean: float
    tokens_per_s_per_usd: float | None = None  # output tokens/s for each $/h of the instance
    usd_per_million_output_tokens: float | None = None
    planned: int = 0  # requests the level should have sent
    not_sent: int = 0  # planned but never sent: the generator could not build the prompt (its log says why)

    @classmethod
    def from_report(cls, concurrency: int, report: dict[str, Any], hourly_usd: float | None,
                    planned: int = 0) -> "Level":
        ok = report.get("successes") or {}
        lat = ok.get("latency") or {}
        tput = ok.get("throughput") or {}
        failures = (report.get("failures") or {}).get("count", 0)
        successes = ok.get("count", 0)
        out_tps = float(tput.get("output_tokens_per_sec") or 0.0)
        per_usd = usd_per_m = None
        if hourly_usd and out_tps > 0:
            per_usd = out_tps / hourly_usd
            usd_per_m = hourly_usd / (out_tps * 3600) * 1e6
        requests = (report.get("load_summary") or {}).get("count", successes + failures)
        return cls(
            concurrency=concurrency,
            requests=requests,
            successes=successes,
            errors=failures,
            duration_s=float(report.get("benchmark_time_seconds") or 0.0),
            ttft=Percentiles.of(lat.get("time_to_first_token")),
            itl=Percentiles.of(lat.get("time_per_output_token")),
            e2e=Percentiles.of(lat.get("request_latency")),
            throughput=Percentiles.inverse_of(lat.get("normalized_time_per_output_token")),
            output_tokens_per_s=out_tps,
            total_tokens_per_s=float(tput.get("total_tokens_per_sec") or 0.0),
            requests_per_s=float(tput.get("requests_per_sec") or 0.0),
            prompt_tokens_mean=float((ok.get("prompt_tokens") or {}).get("mean") or 0.0),
            output_tokens_mean=float((ok.get("output_tokens") or {}).get("mean") or 0.0),
            tokens_per_s_per_usd=per_usd,
            usd_per_million_output_tokens=usd_per_m,
            planned=planned or requests,
            not_sent=max(0, (planned or requests) - requests),
        )


@dataclass(frozen=True)
class Knee:
    concurrency: int | None  # the level past which throughput stops rising; None if it rose to the end
    predicted: int | None
    words: str


def _signed_percent(change: float) -> str:
    """+3 %, -12 %, and 0 % for a change that rounds to nothing (never "-0 %")."""
    rounded = round(change * 100)
    return f"{rounded:+d} %" if rounded else "0 %"


def find_knee(levels: list[Level], predicted: int | None, gain: float = KNEE_GAIN) -> Knee:
    """The first level whose next level adds less than `gain` (10 %) aggregate output throughput, compared with the
    concurrency sizing predicted (the plan's concurrency times the minimum replicas)."""
    pts = [lv for lv in levels if lv.output_tokens_per_s > 0]
    knee = None
    for a, b in zip(pts, pts[1:]):
        if b.output_tokens_per_s < a.output_tokens_per_s * (1 + gain):
            knee = a
            break
    best = max(pts, key=lambda lv: lv.output_tokens_per_s, default=None)
    if best is None:
        return Knee(None, predicted, "no level completed a request: no throughput to compare")
    if knee is None:
        words = (f"Throughput was still rising at the highest level measured (concurrency {pts[-1].concurrency}, "
                 f"{pts[-1].output_tokens_per_s:.1f} output tokens/s): the knee lies beyond the sweep")
        if predicted is not None:
            words += (f"; the sizing's concurrency ({predicted}) is within what the server sustains" if
                      pts[-1].concurrency >= predicted else
                      f"; the sweep stopped below the sizing's concurrency ({predicted})")
        return Knee(None, predicted, words + ".")
    nxt = pts[pts.index(knee) + 1]
    words = (f"Throughput stops rising at concurrency {knee.concurrency} ({knee.output_tokens_per_s:.1f} output "
             f"tokens/s; {nxt.concurrency} gives {nxt.output_tokens_per_s:.1f}, "
             f"{_signed_percent(nxt.output_tokens_per_s / knee.output_tokens_per_s - 1)})")
    if predicted is None:
        words += "."
    elif knee.concurrency == predicted:
        words += f", the concurrency the sizing predicted ({predicted}): the plan matches the server."
    elif knee.concurrency < predicted:
        words += (f", below the {predicted} the sizing predicted: the server saturates (compute, not KV cache) "
                  f"before the planned concurrency; expect latency to grow past {knee.concurrency} concurrent "
                  "requests, or plan a larger instance or more replicas.")
    else:
        words += (f", above the {predicted} the sizing predicted: the instance has headroom for this workload "
                  f"(shorter requests than max_model_len leave KV cache for more); a smaller instance or a higher "
                  "concurrency target may be cheaper per token.")
    return Knee(knee.concurrency, predicted, words)


@dataclass
class Results:
    target: dict[str, Any]
    workload: dict[str, Any]
    levels: list[Level]
    knee: Knee
    hourly_usd: float | None
    generator: dict[str, str]
    warmup: Level | None = None
    plan: dict[str, Any] = field(default_factory=dict)

    @property
    def total_errors(self) -> int:
        return sum(lv.errors for lv in self.levels)

    @property
    def total_not_sent(self) -> int:
        return sum(lv.not_sent for lv in self.levels)

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        return clean({
            "schema": SCHEMA,
            "generator": self.generator,
            "target": self.target,
            "plan": self.plan,
            "workload": self.workload,
            "hourly_usd": self.hourly_usd,
            "levels": [asdict(lv) for lv in self.levels],
            "warmup": asdict(self.warmup) if self.warmup else None,
            "errors": self.total_errors,
            "not_sent": self.total_not_sent,
            "knee": asdict(self.knee),
        })

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def collect(reports: dict[int, dict[str, Any]], workload: Workload, *, hourly_usd: float | None,
            predicted: int | None, target: dict[str, Any], generator: dict[str, str],
            plan: dict[str, Any] | None = None) -> Results:
    levels: list[Level] = []
    warmup = None
    for stage in sorted(reports):
        c = workload.level_of_stage(stage)
        if c is None:
            if workload.warmup_requests and stage == 0:
                warmup = Level.from_report(1, reports[stage], hourly_usd, workload.warmup_requests)
            continue
        levels.append(Level.from_report(c, reports[stage], hourly_usd, workload.requests_at(c)))
    if not levels:
        raise ResultsError("the generator printed no stage report (see its log for why)")
    return Results(target=target, workload=workload.to_dict(), levels=levels,
                   knee=find_knee(levels, predicted), hourly_usd=hourly_usd, generator=generator,
                   warmup=warmup, plan=plan or {})
