"""Side by side: NVIDIA's aiconfigurator and sizing/performance.py on the published rows of GPUs aiconfigurator knows.

aiconfigurator (PyPI, Apache-2.0) predicts TTFT and TPOT from a measured per-kernel database shipped in its wheel
(aiconfigurator_core/systems/data: h100_sxm, h200_sxm, a100_sxm, l4, l40s, b200_sxm, ...); it runs offline. It is a
dev/bench tool here, never a runtime dependency, so it lives in its own virtualenv:

    python3 -m venv /tmp/aic && /tmp/aic/bin/pip install aiconfigurator==0.12.0
    venv/bin/python tools/aiconfigurator_side_by_side.py --aiconfigurator /tmp/aic/bin/aiconfigurator

For each row of sizing/data/performance.yaml on such a GPU (closed loop: concurrency = aiconfigurator's batch size,
`--estimate-mode agg`; backend trtllm for NIM rows, vllm otherwise; fp8 weights and KV cache as the row says) it
prints measured, both predictions and both errors, then the median and worst error of each tool.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sizing import catalog  # noqa: E402
from sizing.performance import efficiency, measurements, predicted_metrics  # noqa: E402

SYSTEMS = {"h100": "h100_sxm", "h200": "h200_sxm", "a100-80gb": "a100_sxm", "a100-40gb": "a100_sxm",
           "l4": "l4", "l40s": "l40s", "b200": "b200_sxm", "rtx-pro-6000": "rtx_pro_6000_server"}
FIELDS = {"ttft_ms": r"TTFT:\s+([\d.]+) ms", "itl_ms": r"TPOT:\s+([\d.]+) ms", "output_tokens_per_s": r"\n\s+tokens/s:\s+([\d.]+)"}


def aiconfigurator(binary: str, m, config_dir: str) -> dict[str, float]:
    cmd = [binary, "cli", "estimate", "--model-path", config_dir, "--system", SYSTEMS[m.accelerator],
           "--backend", "trtllm" if m.engine.startswith("NIM") else "vllm", "--isl", str(m.input_tokens),
           "--osl", str(m.output_tokens), "--batch-size", str(m.concurrency), "--tp-size", str(m.tp),
           "--estimate-mode", "agg"]
    if m.quantization == "fp8":
        cmd += ["--gemm-quant-mode", "fp8"]
    if m.kv_cache_dtype.startswith("fp8"):
        cmd += ["--kvcache-quant-mode", "fp8"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    text = out.stdout + out.stderr
    got = {k: float(x.group(1)) for k, pat in FIELDS.items() if (x := re.search(pat, text))}
    if not got:
        raise RuntimeError(f"aiconfigurator gave no estimate for {m.id}: {text.strip().splitlines()[-1:]}")
    return got


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--aiconfigurator", default="aiconfigurator", help="the aiconfigurator executable")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows, errs = [], {"aiconfigurator": [], "sizing": []}
    for m in measurements():
        if m.accelerator not in SYSTEMS or m.concurrency is None:
            continue
        with tempfile.TemporaryDirectory() as d:
            cfg, _ = catalog.load_model_config(m.model)
            with open(os.path.join(d, "config.json"), "w", encoding="utf-8") as fh:
                json.dump(cfg, fh)
            aic = aiconfigurator(args.aiconfigurator, m, d)
        ours = predicted_metrics(m, efficiency(catalog.accelerator(m.accelerator)))
        for metric, measured in m.measured:
            if metric not in aic:
                continue
            e_aic, e_ours = aic[metric] / measured - 1, ours[metric] / measured - 1
            errs["aiconfigurator"].append(abs(e_aic))
            errs["sizing"].append(abs(e_ours))
            rows.append({"row": m.id, "split": m.split, "metric": metric, "measured": measured,
                         "aiconfigurator": round(aic[metric], 2), "sizing": round(ours[metric], 2),
                         "aiconfigurator_error": round(e_aic, 3), "sizing_error": round(e_ours, 3)})
    summary = {k: {"median": sorted(v)[len(v) // 2], "worst": max(v), "values": len(v)} for k, v in errs.items() if v}
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary}, indent=2))
        return 0
    print("| row | split | metric | measured | aiconfigurator | error | sizing | error |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['row']} | {r['split']} | {r['metric']} | {r['measured']:g} | {r['aiconfigurator']:g} | "
              f"{r['aiconfigurator_error']:+.0%} | {r['sizing']:g} | {r['sizing_error']:+.0%} |")
    for k, s in summary.items():
        print(f"{k}: median |error| {s['median']:.0%}, worst {s['worst']:.0%} over {s['values']} values")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
