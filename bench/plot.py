"""PNG plots of a benchmark's results.json: latency and throughput against concurrency.

    python -m bench.plot RESULTS_JSON OUT_DIR

Runs in the benchmark's virtualenv (.engines/bench, where matplotlib is), so it imports nothing else of the project:
only the results file's JSON. Writes latency.png (TTFT, ITL and end-to-end latency, p50 with the p90-p99 band) and
throughput.png (aggregate output tokens/s, per-request tokens/s and $ per million output tokens), with the
knee and the sizing's predicted concurrency marked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BLUE, ORANGE, GREEN, GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f"


def _title(results: dict[str, Any]) -> str:
    t = results.get("target", {})
    w = results.get("workload", {})
    inp, out = w.get("input_tokens", {}), w.get("output_tokens", {})
    where = t.get("stack") and f"{t['stack']} / {t.get('model', '')}" or t.get("url", "")
    hw = t.get("instance_type")
    return (f"{where}{f' on {hw}' if hw else ''}\n"
            f"prompt {inp.get('mean')} ± {inp.get('std')} tokens, output {out.get('mean')} ± {out.get('std')} tokens")


def _marks(ax, results: dict[str, Any]) -> None:
    knee = results.get("knee") or {}
    if knee.get("predicted"):
        ax.axvline(knee["predicted"], color=GREY, linestyle="--", linewidth=1, label=f"sizing: {knee['predicted']}")
    if knee.get("concurrency"):
        ax.axvline(knee["concurrency"], color="#d62728", linestyle=":", linewidth=1.5,
                   label=f"knee: {knee['concurrency']}")


def _xaxis(ax, xs: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.set_xticklabels([str(x) for x in xs])
    ax.set_xlabel("concurrent requests")
    ax.grid(True, which="major", alpha=0.3)


def latency(results: dict[str, Any], out: Path) -> Path:
    levels = results["levels"]
    xs = [lv["concurrency"] for lv in levels]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, key, name in zip(axes, ("ttft", "itl", "e2e"),
                             ("time to first token", "inter-token latency", "end-to-end latency")):
        p50 = [lv[key]["p50"] for lv in levels]
        p90 = [lv[key]["p90"] for lv in levels]
        p99 = [lv[key]["p99"] for lv in levels]
        scale, unit = (1000.0, "ms") if max((v for v in p99 if v is not None), default=0) < 1 else (1.0, "s")

        def sc(vs, scale=scale):
            return [v * scale if v is not None else float("nan") for v in vs]

        ax.fill_between(xs, sc(p90), sc(p99), color=BLUE, alpha=0.15, label="p90-p99")
        ax.plot(xs, sc(p90), color=BLUE, alpha=0.5, linewidth=1, marker=".", label="p90")
        ax.plot(xs, sc(p50), color=BLUE, linewidth=2, marker="o", label="p50")
        ax.plot(xs, sc(p99), color=BLUE, alpha=0.5, linewidth=1, linestyle="--", marker=".", label="p99")
        _marks(ax, results)
        _xaxis(ax, xs)
        ax.set_ylim(bottom=0)
        ax.set_title(name)
        ax.set_ylabel(unit)
        ax.legend(fontsize=8, loc="upper left")
    return _save(fig, "Latency against concurrency: " + _title(results), out / "latency.png")


def _save(fig: Any, title: str, path: Path) -> Path:
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput(results: dict[str, Any], out: Path) -> Path:
    levels = results["levels"]
    xs = [lv["concurrency"] for lv in levels]
    fig, (ax, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.6))
    ax.plot(xs, [lv["output_tokens_per_s"] for lv in levels], color=GREEN, linewidth=2, marker="o",
            label="output tokens/s")
    ax.plot(xs, [lv["total_tokens_per_s"] for lv in levels], color=GREEN, alpha=0.5, linestyle="--", marker=".",
            label="prompt + output tokens/s")
    _marks(ax, results)
    _xaxis(ax, xs)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("tokens/s, all requests")
    ax.set_title("aggregate throughput")
    ax.legend(fontsize=8, loc="upper left")

    nan = float("nan")
    get = lambda lv, k: lv["throughput"][k] if lv["throughput"][k] is not None else nan  # noqa: E731
    ax2.fill_between(xs, [get(lv, "p50") for lv in levels], [get(lv, "p99") for lv in levels], color=ORANGE,
                     alpha=0.15, label="p50-p99")
    ax2.plot(xs, [get(lv, "p50") for lv in levels], color=ORANGE, linewidth=2, marker="o", label="p50")
    _marks(ax2, results)
    _xaxis(ax2, xs)
    ax2.set_ylim(bottom=0)
    ax2.set_ylabel("output tokens/s of one request")
    ax2.set_title("per-request throughput (what one user sees)")
    ax2.legend(fontsize=8, loc="upper right")

    usd = [lv.get("usd_per_million_output_tokens") for lv in levels]
    if any(u is not None for u in usd):
        ax3.plot(xs, [u if u is not None else nan for u in usd], color=GREY, marker="s", linewidth=2,
                 label=f"at \\${results.get('hourly_usd'):.3f}/h")
        _marks(ax3, results)
        ax3.set_ylim(bottom=0)
        ax3.set_ylabel("\\$ per million output tokens")
        ax3.legend(fontsize=8, loc="upper right")
    else:
        ax3.text(0.5, 0.5, "no $/h given\n(--hourly-usd, or a stack's plan)", ha="center", va="center",
                 transform=ax3.transAxes, color=GREY)
    _xaxis(ax3, xs)
    ax3.set_title("cost per output token")
    return _save(fig, "Throughput against concurrency: " + _title(results), out / "throughput.png")


def plot(results_json: Path, out: Path) -> list[Path]:
    results = json.loads(results_json.read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    return [latency(results, out), throughput(results, out)]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    for p in plot(Path(args[0]), Path(args[1])):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
