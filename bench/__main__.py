"""Benchmark a deployed model: `make bench STACK=<name>` or `python -m bench <stack> [options]`.

    python -m bench qwen-g6                      # render the in-cluster Job under build/qwen-g6/bench/
    python -m bench qwen-g6 --apply              # ...run it with kubectl, copy the results back from its log
    python -m bench qwen-g6 --from-logs job.log  # results from a Job log saved by hand
    python -m bench --url http://127.0.0.1:8000/v1 --hourly-usd 0.98   # any OpenAI server, generator run here

The workload is seed 004's (512 +- 20 prompt tokens, 245 +- 20 output tokens, 8 requests per concurrent user), the
sweep 1, 2, 4, 8 ... up to one doubling past the concurrency the sizing planned (the plan's concurrency, the whole
deployment's at its planned replicas; never past max_num_seqs over those replicas). The output, under build/<stack>/bench/<model>/ (or build/bench/ for a
bare --url): results.json, latency.png, throughput.png, the generator's config and log; a table on the terminal,
with where throughput stops rising compared with the planned concurrency.

The load generator: inference-perf 0.7.0 (kubernetes-sigs/inference-perf, Apache-2.0), chosen over guidellm 0.8.1:
- it is built to run as a Kubernetes Job and prints each stage's JSON report between markers on stdout, so results
  come back through `kubectl logs` with no volume, bucket or credentials; the same parser reads a local run;
- it needs no torch: guidellm 0.8 requires torch (its data loader), which on Linux from PyPI is the CUDA build with
  its nvidia-* wheels, several GB for an HTTP client; inference-perf's virtualenv is about 0.8 GB;
- a "concurrent" load type with one stage per concurrency level and normal token-length distributions (seed 004's
  mean +- stddev), reporting TTFT, inter-token latency, time per output token and end-to-end latency with
  percentiles, plus server-reported token usage;
- it is what the AI on EKS benchmarking guide (the seeds' project) runs, with an official image on quay.io.
Its cost: Python >= 3.12 and exact pins (transformers==5.13.0), hence its own virtualenv (.engines/bench, made by
`make bench-venv`) instead of ./venv, which bench/ itself runs in.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from components import scale_to_zero
from plan.models import ModelPlan

from . import job as jobs
from .results import Results, ResultsError, collect, stage_reports
from .runner import REPO, RunError, plot, run_job, run_local, served_models
from .workload import (CHAT_OUTPUT_TOKENS, INFERENCE_PERF_IMAGE, INFERENCE_PERF_VERSION, REQUEST_TIMEOUT_S,
                       SEED_INPUT_TOKENS, SEED_OUTPUT_TOKENS, WARMUP_REQUESTS, TokenDistribution, Workload,
                       inference_perf_config, sweep)

BUILD = REPO / "build"
# What differs for a SageMaker endpoint (README, "The same plan as a SageMaker endpoint").
SAGEMAKER_UNSUPPORTED = (
    "stack {stack} is a SageMaker endpoint: its API is InvokeEndpoint (POST /endpoints/<name>/invocations, SigV4-"
    "signed with AWS credentials), which inference-perf 0.7.0 cannot call (it speaks plain OpenAI HTTP); benchmark "
    "the same plan on EKS (its llama2-13b-g5 twin), or a local vLLM with --url")
DEFAULT_TIMEOUT_S = 2 * 3600


@dataclass(frozen=True)
class Target:
    """One thing to benchmark: a stack's model (with its plan) and/or a URL."""

    label: str
    url: str
    out: Path
    predicted: int | None
    cap: int | None
    hourly_usd: float | None
    model_name: str | None
    tokenizer: str | None
    namespace: str | None
    info: dict[str, Any]
    plan: dict[str, Any]
    model_plan: ModelPlan | None = None  # the stack's plan: predicted next to measured, and --save-calibration


def _tokens(text: str) -> TokenDistribution:
    """MEAN or MEAN:STD (also MEAN+-STD)."""
    text = text.replace("+-", ":").replace("±", ":")
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected MEAN or MEAN:STD, e.g. 512:20") from None
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"{text!r}: expected MEAN or MEAN:STD")
    try:
        return TokenDistribution(*parts)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(sorted({int(p) for p in text.split(",") if p.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 1,2,4") from None
    if not levels or levels[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: concurrency levels must be >= 1")
    return levels


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Workload defaults are the LLMPerf run of AI on EKS's Llama-3-8B-on-Inferentia2 blueprint; "
                                "see bench/__main__.py for the generator.")
    p.add_argument("stack", nargs="?", help="stack name (stacks/Pulumi.<stack>.yaml): sweep, $/h and in-cluster endpoint")
    p.add_argument("--model", help="the stack's model entry (its `name`) to benchmark; default: every model")
    p.add_argument("--url", help="benchmark this OpenAI base URL (e.g. http://127.0.0.1:8000/v1), generator run here")
    p.add_argument("--apply", action="store_true", help="run the rendered Job with kubectl and copy results back")
    p.add_argument("--from-logs", type=Path, metavar="LOG", help="read results from a saved log of the Job")
    p.add_argument("--hourly-usd", type=float, help="instance $/h for the cost figures (default: the plan's)")
    p.add_argument("--input-tokens", type=_tokens, metavar="MEAN[:STD]",
                   default=TokenDistribution(*SEED_INPUT_TOKENS), help="prompt tokens (default 512:20)")
    p.add_argument("--output-tokens", type=_tokens, metavar="MEAN[:STD]",
                   default=TokenDistribution(*SEED_OUTPUT_TOKENS), help="output tokens (default 245:20)")
    p.add_argument("--concurrency", type=_levels, metavar="C1,C2,...",
                   help="concurrency levels (default: 1, 2, 4 ... one doubling past the plan's concurrency)")
    p.add_argument("--requests-per-level", type=int, metavar="N", help="requests per level (default 8 x concurrency)")
    p.add_argument("--warmup", type=int, default=WARMUP_REQUESTS, metavar="N",
                   help=f"warm-up requests before the sweep, not reported in the table (default {WARMUP_REQUESTS})")
    p.add_argument("--api", choices=("completion", "chat"),
                   help="OpenAI API to call (default: completion, Shakespeare prompts cut to exact token counts, as "
                        "LLMPerf, for vLLM's server and the Ray Serve app alike; chat: about-length prompts and "
                        f"{CHAT_OUTPUT_TOKENS} output tokens)")
    p.add_argument("--served-model", help="model name sent in requests (default: what /v1/models reports)")
    p.add_argument("--tokenizer", help="tokenizer (HF id or path) for prompt lengths (default: the stack's model)")
    p.add_argument("--out", type=Path, help="output directory (default build/<stack>/bench/<model>; several models: OUT/<model>)")
    p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S, help="Job deadline in seconds (default 7200)")
    p.add_argument("--json", action="store_true", help="also print results.json to stdout")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--save-calibration", action="store_true",
                   help="record this run as the calibration of the plan's instance type (sizing/data/calibration.yaml): "
                        "the performance model then predicts that instance type from it")
    return p


def _stack_targets(args: argparse.Namespace) -> list[Target]:
    from config import load_stack_config
    from plan.models import plan_models
    from preview.harness import read_stack_config, stack_file

    raw, secrets = read_stack_config(stack_file(args.stack))
    config = load_stack_config(raw, set(secrets))
    if config.target == "sagemaker":
        raise ValueError(SAGEMAKER_UNSUPPORTED.format(stack=args.stack))
    models = plan_models(config)
    if args.model:
        models = [m for m in models if m.name == args.model]
        if not models:
            raise ValueError(f"--model {args.model}: no such model in stack {args.stack}")
    if args.url and len(models) > 1:
        raise ValueError(f"--url: stack {args.stack} serves {len(models)} models; pick one with --model")
    targets = []
    for m in models:
        # a model that scales to zero has no Service endpoint while idle: the interceptor holds and wakes it
        url = args.url or (scale_to_zero.openai_url(m) if m.scales_to_zero else m.endpoint)
        out = (args.out / m.name if len(models) > 1 else args.out) if args.out else BUILD / args.stack / "bench" / m.name
        prediction = planned(m)
        targets.append(Target(
            label=m.name, url=url, out=out,
            predicted=prediction["predicted_concurrency"], cap=prediction["max_num_seqs"] * prediction["replicas"],
            hourly_usd=args.hourly_usd if args.hourly_usd is not None else prediction["fleet_hourly_usd"],
            model_name=args.served_model, tokenizer=args.tokenizer or m.spec.model, namespace=m.namespace,
            info={"stack": args.stack, "model": m.name, "hf_model": m.spec.model, "server": m.server, "url": url,
                  "instance_type": prediction["instance_type"], "replicas": prediction["replicas"],
                  "nodes": prediction["nodes"]},
            plan=prediction, model_plan=m,
        ))
    return targets


def planned(m: ModelPlan) -> dict[str, Any]:
    """What the benchmark compares its measurements with, read off the model's plan and never recomputed: the plan's
    concurrency is the whole deployment's (already over its replicas), and its node count includes the zone
    spread."""
    plan = m.plan
    return {"instance_type": plan.instance_type, "hourly_usd_per_node": plan.hourly_usd, "nodes": plan.nodes,
            "fleet_hourly_usd": plan.fleet_hourly_usd, "replicas": plan.replicas,
            "concurrency_per_replica": plan.concurrency_per_replica, "max_num_seqs": plan.max_num_seqs,
            "predicted_concurrency": plan.concurrency}


def targets(args: argparse.Namespace) -> list[Target]:
    if args.stack:
        return _stack_targets(args)
    if not args.url:
        raise ValueError("give a stack (python -m bench <stack>) or --url http://host:port/v1")
    return [Target(label="url", url=args.url, out=args.out or BUILD / "bench", predicted=None, cap=None,
                   hourly_usd=args.hourly_usd, model_name=args.served_model, tokenizer=args.tokenizer,
                   namespace=None, info={"url": args.url}, plan={})]


def workload_for(args: argparse.Namespace, target: Target) -> Workload:
    levels = args.concurrency or (sweep(target.predicted, target.cap) if target.predicted else (1, 2, 4, 8, 16))
    api = args.api or "completion"  # both servers (vLLM's, the Ray Serve app) serve /v1/completions
    return Workload(input_tokens=args.input_tokens, output_tokens=args.output_tokens, concurrency=levels,
                    requests_per_level=args.requests_per_level, warmup_requests=max(0, args.warmup), api=api)


def _fmt(v: float | None, scale: float = 1.0, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v * scale:,.{digits}f}"


def _pct(p, scale: float, digits: int) -> str:
    return " / ".join(_fmt(x, scale, digits) for x in (p.p50, p.p90, p.p99))


def tables(results: Results) -> list[Table]:
    """Latency (p50 / p90 / p99 per level) and throughput with cost: two narrow tables that fit 80 columns."""
    where = (f"{results.target.get('stack') or results.target.get('url')}"
             f"{' / ' + results.target['model'] if results.target.get('model') else ''}")
    knee = results.knee.concurrency
    lat = Table(title=f"{where}: latency, p50 / p90 / p99", title_justify="left")
    tput = Table(title=f"{where}: throughput and cost", title_justify="left")
    for t in (lat, tput):
        t.add_column("conc.", justify="right", no_wrap=True)
    lat.add_column("requests", justify="right", no_wrap=True)
    lat.add_column("errors", justify="right", no_wrap=True)
    lat.add_column("TTFT ms", justify="right", no_wrap=True)
    lat.add_column("ITL ms", justify="right", no_wrap=True)
    lat.add_column("E2E s", justify="right", no_wrap=True)
    tput.add_column("output tok/s", justify="right", no_wrap=True)
    tput.add_column("req/s", justify="right", no_wrap=True)
    tput.add_column("tok/s per request", justify="right", no_wrap=True)
    tput.add_column("tok/s per $/h", justify="right", no_wrap=True)
    tput.add_column("$ / 1M output", justify="right", no_wrap=True)
    for lv in results.levels:
        conc = f"{lv.concurrency}{' *' if lv.concurrency == knee else ''}"
        lat.add_row(conc, str(lv.requests) if not lv.not_sent else f"[yellow]{lv.requests}/{lv.planned}[/yellow]", f"[red]{lv.errors}[/red]" if lv.errors else "0",
                    _pct(lv.ttft, 1000, 0), _pct(lv.itl, 1000, 1), _pct(lv.e2e, 1, 2))
        tput.add_row(conc, _fmt(lv.output_tokens_per_s, 1, 1), _fmt(lv.requests_per_s, 1, 2),
                     _pct(lv.throughput, 1, 0), _fmt(lv.tokens_per_s_per_usd, 1, 1),
                     _fmt(lv.usd_per_million_output_tokens, 1, 2))
    if knee is not None:
        tput.caption = "* where throughput stops rising"
    return [lat, tput]


def finish(console: Console, args: argparse.Namespace, target: Target, workload: Workload,
           lines: list[str]) -> Results:
    results = collect(stage_reports(lines), workload, hourly_usd=target.hourly_usd, predicted=target.predicted,
                      target=target.info, plan=target.plan,
                      generator={"name": "inference-perf", "version": INFERENCE_PERF_VERSION,
                                 "image": INFERENCE_PERF_IMAGE})
    path = results.write(target.out / "results.json")
    for t in tables(results):
        console.print(t)
    console.print(results.knee.words)
    if target.model_plan is not None:  # predicted next to measured, at every level
        from . import predicted

        rows = predicted.comparison(results, target.model_plan)
        inst = target.model_plan.plan.instance_type
        from sizing.catalog import instance
        from sizing.performance import efficiency

        fitted_on = efficiency(instance(inst).accelerator, inst).fitted_on
        console.print(predicted.table(rows, target.label, fitted_on))
        (target.out / "predicted.json").write_text(json.dumps({"factors": fitted_on, "levels": rows}, indent=2) + "\n",
                                                   encoding="utf-8")
        if args.save_calibration:
            cal = predicted.calibrate(results, target.model_plan, source=str(path))
            console.print(f"calibration of {inst} saved in sizing/data/calibration.yaml: memory {cal['memory']}, "
                          f"compute {cal['compute']}, step {cal['step_ms']} ms")
    if results.total_not_sent:
        reasons = sorted({ln.split("Failed to get request: ", 1)[1].strip() for ln in lines
                          if "Failed to get request: " in ln})
        console.print(f"[yellow]{results.total_not_sent} planned request(s) were never sent"
                      f"{': ' + reasons[0] if reasons else ''}[/yellow]")
    if target.hourly_usd is None:
        console.print("[dim]No $/h: give --hourly-usd for tokens per second per dollar and $ per million tokens.[/dim]")
    written = [path]
    if not args.no_plots:
        written += plot(path, target.out)
    console.print("wrote " + ", ".join(str(p.relative_to(REPO) if p.is_relative_to(REPO) else p) for p in written))
    if args.json:
        print(json.dumps(results.to_dict(), indent=2))
    return results


def run(args: argparse.Namespace, console: Console) -> int:
    failed = 0
    for target in targets(args):
        workload = workload_for(args, target)
        console.print(f"[bold]{target.label}[/bold]: {target.url}, prompt {workload.input_tokens} / output "
                      f"{workload.output_tokens} tokens, concurrency {', '.join(map(str, workload.concurrency))}"
                      + (f" (sizing: {target.predicted})" if target.predicted else "")
                      + (f", ${target.hourly_usd:.3f}/h" if target.hourly_usd is not None else ""))
        if workload.api == "chat":
            console.print("[yellow]chat API: inference-perf 0.7.0 sends chat requests with prompts of about the "
                          f"sampled length and max_tokens={CHAT_OUTPUT_TOKENS} whatever --output-tokens says "
                          "(the blueprint's exact workload needs the default, --api completion)[/yellow]")
        if args.url and target.info.get("hf_model"):
            served = served_models(target.url)
            if served is not None and target.info["hf_model"] not in served and target.label not in served:
                console.print(f"[yellow]warning: {target.url} serves {', '.join(served) or 'no model'}, not the "
                              f"stack's {target.info['hf_model']}: the plan's figures (concurrency, $/h) are for "
                              "another model[/yellow]")
        in_cluster = not args.url
        report_dir = "/tmp/reports" if in_cluster else "reports"
        timeout = target.model_plan.client_timeout_s(REQUEST_TIMEOUT_S) if target.model_plan else REQUEST_TIMEOUT_S
        config = inference_perf_config(workload, url=target.url, model_name=target.model_name,
                                       tokenizer=target.tokenizer, report_dir=report_dir, request_timeout_s=timeout)
        if args.from_logs:
            lines = args.from_logs.read_text(encoding="utf-8").splitlines()
        elif args.url:
            lines = run_local(config, workload, target.out, console, target.label)
        else:
            docs = jobs.manifests(target.namespace, config, timeout_s=args.timeout)
            manifest = target.out / "job.yaml"
            manifest.parent.mkdir(parents=True, exist_ok=True)
            manifest.write_text(jobs.to_yaml(docs), encoding="utf-8")
            name = jobs.job_name(target.namespace)
            rel = manifest.relative_to(REPO) if manifest.is_relative_to(REPO) else manifest
            if not args.apply:
                console.print(f"wrote {rel} (ConfigMap + Job {name} in namespace {target.namespace}, "
                              f"{INFERENCE_PERF_IMAGE}). Run it and collect the results with\n"
                              f"  python -m bench {args.stack} --model {target.label} --apply\n"
                              f"or by hand: kubectl apply -f {rel} && kubectl -n {target.namespace} logs -f "
                              f"job/{name} > job.log; python -m bench {args.stack} --model {target.label} "
                              "--from-logs job.log")
                continue
            lines = run_job(manifest, target.namespace, name, workload, target.out, console, target.label,
                            args.timeout)
        results = finish(console, args, target, workload, lines)
        failed += results.total_errors > 0
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    stream = sys.stderr if args.json else sys.stdout
    console = Console(stderr=args.json, width=None if stream.isatty() else 120)  # logs and CI: no 80-column wrap
    try:
        return run(args, console)
    except (ValueError, RunError, ResultsError) as exc:  # config and stack-file errors are ValueErrors
        console.print(f"[red]error:[/red] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
