"""make preview STACK=<name>: what `pulumi up -s <name>` would build, offline (no AWS, no Pulumi CLI).

Validates the stack file and sizes every model first (one line naming the key on failure, before any resource is
registered), runs __main__.py under the mock runtime, prints the sizing decision, the resource tree and the
monthly cost, and writes build/<stack>/plan.json and build/<stack>/manifests/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

import pulumi
from rich import box
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from config import ConfigError, load_stack_config
from plan.cost import Cost
from plan.models import ModelPlan
from plan.sagemaker import EndpointPlan, endpoints_cost, plan_endpoints
from plan.stack import plan_stack
from sizing.report import budget_table

from . import render
from .harness import REPO, StackFileError, StackRun, read_stack_config, run_stack, stack_file

console = Console()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"preview: error: {message}\n")


def _outputs_table(exports: dict) -> Table:
    """The stack outputs `pulumi up` would export (README, "Stack outputs"), as the mock run resolved them."""
    t = Table(title="stack outputs (pulumi stack output)", box=box.SIMPLE, show_header=True, header_style="bold")
    t.add_column("output")
    t.add_column("value", overflow="fold")
    for name, value in exports.items():
        shown = ", ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
        t.add_row(name, shown)
    return t


def _print_plans(plans: list[ModelPlan]) -> None:
    for p in plans:
        console.rule(f"[bold]{p.name}[/]: {p.spec.model} via {'vLLM' if p.server == 'vllm' else 'Ray Serve + vLLM'}")
        console.print(p.plan.explanation)
        if p.plan.performance:
            f = p.plan.performance
            console.print(f"[bold]predicted[/] p90 TTFT {f['ttft_p90_ms']:g} ms, ITL {f['itl_ms']:g} ms, "
                          f"{f['output_tokens_per_s']:,.0f} output tokens/s, up to {f['max_requests_per_second']:.3g} "
                          f"requests/s; ${f['usd_per_million_output_tokens']:.3g} per million output tokens, "
                          f"${f['usd_per_million_input_tokens']:.3g} per million input; bound: {f['binding']}",
                          highlight=False)
        console.print(budget_table(p.plan.memory))
        what = "vllm serve" if p.server == "vllm" else "vllm-neuron engine (Ray Serve app settings)"
        console.print(f"[bold]{what}[/] {' '.join(p.server_args)}")
        res = p.plan.resources
        console.print(f"[bold]pod[/] requests {render.quantities(res.requests())}  limits {render.quantities(res.limits())}  "
                      f"/dev/shm {res.shm_mib}Mi  node disk {p.plan.node_disk_gib} GiB", highlight=False)
        c = p.cold_start
        load = ", ".join(f"{k} {v} s" for k, v in c.weight_load_s.items())
        engine = "Neuron compile" if p.plan.vendor == "neuron" else "engine start (profiling, torch.compile, CUDA graphs)"
        console.print(f"[bold]cold start[/] {c.total_s} s from nothing to the first token: node launch {c.node_launch_s} s, "
                      f"image pull {c.image_pull_s} s ({c.image_pull_mode}), weight load {c.weight_load_s[c.weight_source]} s from "
                      f"{'the S3 weights cache' if c.weight_source == 's3' else 'the Hub'} ({load}), {engine} "
                      f"{c.engine_start_s} s{' (uncached)' if c.compile_cached is False else ''}; startup probe "
                      f"allows {c.startup_probe_s} s", highlight=False)
        if p.scales_to_zero:
            _print_scale_to_zero(p)
        if p.plan.rejected:
            console.print(_rejected_table(p))


def _print_scale_to_zero(p: ModelPlan) -> None:
    console.print(f"[bold]scale to zero[/] no replica while idle: the first request to {p.spec.model} waits up to "
                  f"{p.wake_s} s (the cold start) in the KEDA HTTP add-on's interceptor, which wakes it "
                  f"(InterceptorRoute and ScaledObject {p.name}, minReplicaCount 0); idle again, it goes back to 0 "
                  "and Karpenter removes the empty node (README, \"Scale to zero\")", highlight=False)


def _print_endpoints(endpoints: list[EndpointPlan]) -> None:
    for e in endpoints:
        p = e.model
        console.rule(f"[bold]{p.name}[/]: {p.spec.model} as a SageMaker endpoint (LMI container, vLLM)")
        console.print(p.plan.explanation)
        console.print(budget_table(p.plan.memory))
        console.print(f"[bold]instance[/] {e.instance_type} (sized as {p.plan.instance_type}), TP "
                      f"{p.plan.tensor_parallel_size}, {e.copies_per_instance} model copies per instance, "
                      f"{e.min_instances}-{e.max_instances} instance(s), ${e.hourly_usd:.3f}/h each", highlight=False)
        console.print(f"[bold]container[/] {e.image}", highlight=False)
        console.print("[bold]options[/] " + " ".join(f"{k}={v}" for k, v in e.environment.items()), highlight=False)


def _rejected_table(p: ModelPlan) -> Table:
    t = Table(title=f"{p.name}: {len(p.plan.rejected)} instance type(s) rejected", box=box.SIMPLE, title_justify="left")
    for col, just in (("instance", "left"), ("$/h", "right"), ("reason", "left")):
        t.add_column(col, justify=just, overflow="fold")
    for r in p.plan.rejected:
        t.add_row(r.instance_type, f"{r.hourly_usd:.4g}", r.reason)
    return t


def _tree(run: StackRun) -> Tree:
    """Components and their children, each level sorted by type and name (registration order varies by run)."""
    root = Tree(f"[bold]stack {run.stack}[/] ({len(run.resources)} resources)")
    urns = {r.urn for r in run.resources}
    children: dict[str, list] = {}
    for r in run.resources:
        children.setdefault(r.parent if r.parent in urns else "", []).append(r)

    def add(node: Tree, parent: str) -> None:
        for r in sorted(children.get(parent, []), key=lambda r: (r.type, r.name)):
            label = f"[bold]{r.type}[/] {r.name}" if not r.custom else f"{r.type} [cyan]{r.name}[/]"
            add(node.add(label), r.urn)

    add(root, "")
    return root


def _cost_table(cost: Cost) -> Table:
    t = Table(title="monthly cost estimate (on-demand, us-east-1, at the planned replicas)", box=box.SIMPLE)
    for col, just in (("item", "left"), ("detail", "left"), ("$/h", "right"), ("$/month", "right")):
        t.add_column(col, justify=just)
    for line in cost.lines:
        t.add_row(line.item, line.detail, f"{line.hourly_usd:.4f}", f"{line.monthly_usd:,.2f}")
    t.add_row("[bold]total[/]", "", f"[bold]{cost.hourly_usd:.4f}[/]", f"[bold]{cost.monthly_usd:,.2f}[/]")
    return t


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="make preview STACK=<name>", description=__doc__)
    parser.add_argument("stack", help="stack name: stacks/Pulumi.<stack>.yaml")
    parser.add_argument("--out", default=str(REPO / "build"), help="output folder (default: build/)")
    parser.add_argument("--quiet", action="store_true", help="only the summary lines")
    args = parser.parse_args(argv)
    path = stack_file(args.stack)
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    try:
        raw, secrets = read_stack_config(path)
        config = load_stack_config(raw, set(secrets), stack=args.stack)
        if config.target == "sagemaker":
            endpoints = plan_endpoints(config, raw.get("aws:region") or "us-east-1")
            plans, cost = [e.model for e in endpoints], endpoints_cost(endpoints)
        else:
            endpoints = []
            stack_plan = plan_stack(config)
            plans, cost = list(stack_plan.models), stack_plan.cost
        run = run_stack(args.stack, raw, secrets)
    except (StackFileError, ConfigError, pulumi.RunError) as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 2
    for warning in dict.fromkeys(run.warnings):  # what `pulumi up` would warn about (pulumi.log.warn), once each
        print(f"{where}: warning: {warning}", file=sys.stderr)

    out_dir = Path(args.out) / args.stack
    document = render.plan_document(run, plans, cost)
    for model, e in zip(document["models"], endpoints):
        model["sagemaker"] = e.to_dict()
    written = render.write(run, out_dir, document)
    if not args.quiet:
        if endpoints:
            _print_endpoints(endpoints)
        else:
            _print_plans(plans)
        console.print(_tree(run))
        console.print(_cost_table(cost))
        for note in cost.notes:
            console.print(f"[dim]- {note}[/]")
        console.print(_outputs_table(run.exports))
    if endpoints:
        console.print("SageMaker endpoints (InvokeEndpoint, SigV4): " + ", ".join(
            f"{e.name} on {e.min_instances}-{e.max_instances} x {e.instance_type}" for e in endpoints))
    else:
        routes = ", ".join(f"{r.model} ({r.policy})" for r in stack_plan.router.routes)
        console.print(f"one OpenAI endpoint: {stack_plan.router.openai_base_url} serves {routes}")
    console.print(f"[green]{args.stack}[/]: {len(run.resources)} resources, {len(written)} manifests in "
                  f"{out_dir / 'manifests'}, plan in {out_dir / 'plan.json'}; ${cost.monthly_usd:,.0f}/month")
    return 0


if __name__ == "__main__":
    sys.exit(main())
