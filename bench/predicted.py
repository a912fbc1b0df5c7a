"""Predicted next to measured: the performance model (sizing/performance.py) at every level of the sweep, and a
measured run saved as a calibration of its instance type (`--save-calibration`).

A level of C users over R replicas is C / R users a replica (the router spreads them); the fleet's output tokens/s
is R times a replica's. The request shape is what the level measured (mean prompt and output tokens), so a chat run
whose answers came out shorter is compared at its real lengths.
"""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table

from plan.models import ModelPlan, architecture
from sizing import catalog
from sizing.performance import Measurement, efficiency, engine_for, predict, save_calibration
from sizing.weights import resolve_format

from .results import Level, Results


def _shape(level: Level, results: Results) -> tuple[int, int]:
    workload = results.workload
    i = round(level.prompt_tokens_mean) or int(workload["input_tokens"]["mean"])
    o = round(level.output_tokens_mean) or int(workload["output_tokens"]["mean"])
    return max(i, 1), max(o, 1)


def comparison(results: Results, m: ModelPlan) -> list[dict[str, Any]]:
    """Per level: measured p50 TTFT, p50 ITL and output tokens/s, the prediction, and the error."""
    p = m.plan
    arch = architecture(m.spec, 0)
    inst = catalog.instance(p.instance_type)
    e = engine_for(arch, inst.accelerator, p.memory, resolve_format(arch, p.memory.dtype, p.quantization),
                   efficiency(inst.accelerator, inst.name), inst)
    rows = []
    for lv in results.levels:
        if not lv.successes:
            continue
        i, o = _shape(lv, results)
        pred = predict(e, input_tokens=i, output_tokens=o, concurrency=lv.concurrency / p.replicas)
        for metric, measured, predicted in (("TTFT ms", lv.ttft.p50 * 1e3, pred.ttft_ms),
                                            ("ITL ms", lv.itl.p50 * 1e3, pred.itl_ms),
                                            ("output tok/s", lv.output_tokens_per_s,
                                             pred.output_tokens_per_s * p.replicas)):
            rows.append({"concurrency": lv.concurrency, "metric": metric, "measured": measured,
                         "predicted": predicted, "error": predicted / measured - 1 if measured else None})
    return rows


def table(rows: list[dict[str, Any]], where: str, fitted_on: str) -> Table:
    t = Table(title=f"{where}: predicted (sizing, factors of {fitted_on}) vs measured p50", title_justify="left")
    for col in ("conc.", "metric", "measured", "predicted", "error"):
        t.add_column(col, justify="left" if col == "metric" else "right", no_wrap=True)
    for r in rows:
        err = "-" if r["error"] is None else f"{r['error']:+.0%}"
        t.add_row(str(r["concurrency"]), r["metric"], f"{r['measured']:,.1f}", f"{r['predicted']:,.1f}", err)
    return t


def calibration_rows(results: Results, m: ModelPlan) -> list[Measurement]:
    """The run's levels as rows of one replica (C / R users, 1 / R of the tokens/s)."""
    p = m.plan
    rows = []
    for lv in results.levels:
        if not lv.successes or lv.errors:
            continue
        i, o = _shape(lv, results)
        rows.append(Measurement(
            id=f"{p.instance_type}-c{lv.concurrency}", split="fit", accelerator=p.accelerator, model=p.model,
            tp=p.tensor_parallel_size, input_tokens=i, output_tokens=o, concurrency=lv.concurrency / p.replicas,
            measured=(("ttft_ms", lv.ttft.p50 * 1e3), ("itl_ms", lv.itl.p50 * 1e3),
                      ("output_tokens_per_s", lv.output_tokens_per_s / p.replicas)),
            engine=f"vLLM {p.vllm_version} (this project's benchmark)", source="bench",
            quantization=p.quantization, kv_cache_dtype=p.kv_cache_dtype, instance_type=p.instance_type,
        ))
    return rows


def calibrate(results: Results, m: ModelPlan, source: str) -> dict[str, Any]:
    """Save the run as the calibration of its instance type (sizing/data/calibration.yaml)."""
    rows = calibration_rows(results, m)
    if not rows:
        raise ValueError("--save-calibration: no level of this run finished without errors")
    return save_calibration(m.plan.instance_type, rows, source=source, date=time.strftime("%Y-%m-%d"))
