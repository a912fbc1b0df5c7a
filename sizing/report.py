"""Rich tables for people: the budget of one accelerator, a plan, the model catalog."""

from __future__ import annotations

import json

from rich import box
from rich.console import Console
from rich.table import Table

from . import catalog
from .architecture import Architecture
from .catalog import load_config_file
from .errors import render
from .memory import GpuBudget
from .neuron import NeuronBudget
from .planner import HOURS_PER_MONTH, DeploymentPlan

console = Console()


def _gib(x: float) -> str:
    return f"{x:,.2f} GiB"


def budget_table(b: GpuBudget | NeuronBudget) -> Table:
    t = Table(box=box.SIMPLE_HEAVY, show_header=True, header_style="bold")
    t.add_column("per " + b.unit)
    t.add_column("value", justify="right")
    t.add_column("how", style="dim")
    if isinstance(b, GpuBudget):
        t.add_row("usable memory", _gib(b.total_gib), f"CUDA total_memory of {b.accelerator}")
        t.add_row("vLLM budget", _gib(b.requested_gib), f"x gpu_memory_utilization {b.gpu_memory_utilization:g}")
        t.add_row("weights", _gib(b.weights_gib), f"{b.parameters:,} params as {b.weight_format}, / TP {b.tensor_parallel_size}")
        t.add_row("activation peak", _gib(b.activation_gib), f"profile run: {b.max_num_batched_tokens} tokens, {b.max_num_seqs} sampler rows")
        t.add_row("non-torch", _gib(b.non_torch_gib), "NCCL and allocator growth")
        if b.cudagraph_in_budget:
            t.add_row("CUDA graphs", _gib(b.cudagraph_gib), "estimated, inside the budget")
        t.add_row("KV cache", _gib(b.kv_cache_gib), f"{b.kv_bytes_per_token:,} B/token ({b.kv_cache_dtype})", style="bold")
        t.add_row("KV cache tokens", f"{b.kv_cache_tokens:,}", f"blocks of {b.block_size}")
        t.add_row("concurrency", f"{b.max_concurrency:,.1f}", f"requests of {b.max_model_len} tokens")
        t.add_row("startup check", "ok" if b.fits else "FAILS", f"one request needs {_gib(b.needed_kv_gib)}")
        t.add_row("headroom", "ok" if b.headroom_ok else "FAILS",
                  f"{_gib(b.headroom_gib)} outside the budget, {_gib(b.headroom_needed_gib)} needed "
                  f"(context, graphs{'' if b.cudagraph_in_budget else f' {b.cudagraph_gib:.2f}'}, sampler)")
    else:
        t.add_row("HBM", _gib(b.hbm_per_core_gib), f"usable {_gib(b.usable_per_core_gib)} after the runtime reserve")
        t.add_row("weights", _gib(b.weights_per_core_gib), f"{b.parameters:,} params as {b.weight_format}, / TP {b.tensor_parallel_size}")
        t.add_row("KV cache", _gib(b.kv_cache_per_core_gib), f"{b.max_num_seqs} x {b.max_model_len} tokens, KV heads {b.attention_sharding}", style="bold")
        t.add_row("fits", "yes" if b.fits else "NO", f"{b.devices} device(s), {b.tensor_parallel_size} NeuronCores")
    return t


def print_budget(name: str, arch: Architecture, b: GpuBudget | NeuronBudget, names: dict[str, str] | None = None) -> None:
    console.print(f"[bold]{name}[/] ({arch.model_type}, {arch.parameters:,} parameters) on {b.accelerator}, vLLM {b.vllm_version}")
    console.print(budget_table(b))
    problem = b.problem()
    console.print(f"[red]{render(problem, names)}[/]" if problem else "[green]fits[/]", markup=True)


def print_plan(p: DeploymentPlan, arch: Architecture, kv_true: int, kv_seed: int,
               names: dict[str, str] | None = None) -> None:
    console.print(p.explain(names), style="bold green", markup=False)
    if p.utilization_note:
        console.print(render(p.utilization_note, names), style="yellow", markup=False)
    console.print(budget_table(p.memory))
    t = Table(box=box.SIMPLE, show_header=False)
    t.add_column(style="bold")
    t.add_column()
    zones = f", spread over {min(p.replicas, p.spread_zones)} zones" if p.spread_zones >= 2 else ""
    t.add_row("fleet", f"{p.replicas} replica(s) on {p.nodes} x {p.instance_type} ({p.replicas_per_node} a node at most"
              f"{zones}); {p.concurrency} requests at once, {p.concurrency_per_replica} per replica; replica bounds "
              f"{p.min_replicas}..{p.max_replicas}")
    t.add_row("engine arguments", " ".join(p.engine_args))
    t.add_row("pod requests", " ".join(f"{k}={v}" for k, v in p.resources.requests().items()))
    t.add_row("pod limits", " ".join(f"{k}={v}" for k, v in p.resources.limits().items()) + f"; /dev/shm {p.resources.shm_mib}Mi")
    t.add_row("node root volume", f"{p.node_disk_gib} GiB gp3 (image + {p.checkpoint_gib:.1f} GiB checkpoint)")
    t.add_row("cost", f"fleet ${p.fleet_hourly_usd:.4g}/h, ${p.fleet_monthly_usd:,.0f}/month ({p.nodes} x ${p.hourly_usd:.4g}/h, "
              f"{HOURS_PER_MONTH} h a month), on-demand {catalog.prices_as_of()} us-east-1")
    if p.performance:
        f = p.performance
        t.add_row("predicted", f"p90 TTFT {f['ttft_p90_ms']:g} ms, ITL {f['itl_ms']:g} ms, {f['output_tokens_per_s']:,.0f} "
                  f"output tokens/s, up to {f['max_requests_per_second']:.3g} requests/s; "
                  f"${f['usd_per_million_output_tokens']:.3g} / ${f['usd_per_million_input_tokens']:.3g} per million "
                  f"output / input tokens; bound: {f['binding']}")
    if p.pinned:
        t.add_row("pinned", render(p.cheapest_alternative, names) if p.cheapest_alternative
                  else "the pinned instance type is also the cheapest fleet")
    console.print(t)
    seeds = Table(title="published rules of thumb (EKS deployment guides) vs vLLM's accounting (one replica)",
                  box=box.SIMPLE)
    for col in ("formula", "says", "vLLM"):
        seeds.add_column(col)
    for r in p.rules_of_thumb:
        diff = r.total_gib - p.workload_gib
        seeds.add_row(f"{r.name}: {r.formula}", _gib(r.total_gib), f"{_gib(p.workload_gib)} ({diff:+.2f} GiB)")
    ratio = kv_seed / kv_true if kv_true else 0
    seeds.add_row("KV per token: 2 x bytes x layers x hidden", f"{kv_seed:,} B", f"{kv_true:,} B (x{ratio:.2f} too {'high' if ratio > 1 else 'low'})")
    console.print(seeds)
    if p.rejected:
        r = Table(title=f"instance types cheaper per hour than this fleet, and why not ({len(p.rejected)})", box=box.SIMPLE)
        r.add_column("instance")
        r.add_column("$/h", justify="right")
        r.add_column("why")
        for rej in p.rejected:
            r.add_row(rej.instance_type, f"{rej.hourly_usd:.4g}", rej.render(names))
        console.print(r)


def print_models(as_json: bool) -> None:
    """The built-in catalog, ids whole and as the Hub spells them (plain columns: no cell is cut to the terminal)."""
    rows = []
    for model_id, path in sorted(catalog.catalog_ids().items(), key=lambda kv: kv[0].lower()):
        cfg = load_config_file(path)
        rows.append({"model": model_id, "model_type": cfg.get("model_type"), "config": path.name})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    widths = {col: max(len(col), *(len(str(r[col])) for r in rows)) for col in ("model", "model_type")}
    print(f"built-in model catalog: {len(rows)} ids (case-insensitive; other ids are fetched from the Hub when online)")
    print(f"{'model':<{widths['model']}}  {'model_type':<{widths['model_type']}}  config")
    for r in rows:
        print(f"{r['model']:<{widths['model']}}  {str(r['model_type']):<{widths['model_type']}}  {r['config']}")
