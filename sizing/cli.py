"""python -m sizing: size one model on one accelerator, or plan the cheapest deployment.

    python -m sizing --model Qwen/Qwen3-1.7B --max-model-len 8192 --concurrency 4            # plan
    python -m sizing --model mistralai/Mistral-7B-Instruct-v0.3 --max-model-len 32768 \\
        --concurrency 16                                       # 16 users spread: 3 x g6e.xlarge

--concurrency counts the users of the whole deployment; the plan spreads them over up to --max-replicas replicas
(default 100, the stack file's own bound, so the cheapest fleet is found; --max-replicas 1 plans one replica, as a
stack file does by default). --max-hourly-usd caps the whole fleet. Messages name settings as the CLI's flags.
    python -m sizing --model meta-llama/Llama-3.1-8B --accelerator h100 --tp 1 \\
        --gpu-memory-utilization 0.95 --max-model-len 8192 --json                             # one budget
    python -m sizing --model Qwen/Qwen3-8B --gpu-memory-gib 31.36 --compute-capability 12.0 \\
        --max-model-len 8192                                   # a GPU AWS does not sell (an RTX 5090)

Bad input prints one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import NoReturn, Sequence

from . import catalog
from .architecture import Architecture, from_config
from .errors import SizingError
from .memory import GpuBudget, gpu_budget
from .neuron import NeuronBudget, neuron_budget
from .planner import DeploymentPlan, Workload, plan
from .rules_of_thumb import seed_kv_bytes_per_token, true_kv_bytes_per_token
from .settings import CLI_NAMES, SETTINGS, Setting
from .weights import DTYPE_BYTES

EXIT_USAGE = 2
SOURCE_KEYS = ("model", "config")  # where the architecture comes from: one or the other


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _checked(cast, ok, expected: str, must: str):
    """An argparse type: `cast` the text, then require `ok`; each failure is one clear line."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {must}, got {value}")
        return value

    return parse


def _type_of(s: Setting):
    """An argparse type from a setting's description: its cast and bounds, each failure one clear line."""
    if s.choices or s.type is str:
        return None
    return _checked(s.type, s.ok, s.allowed(), s.allowed())


def build_parser() -> argparse.ArgumentParser:
    """Every setting with a CLI flag (sizing/settings.py), plus the CLI's own switches."""
    p = _Parser(
        prog="python -m sizing",
        description="Size an LLM the way vLLM accounts memory, and plan the cheapest EC2 instance that holds it.",
        epilog="With --accelerator: the memory budget of one accelerator. Without: the plan (instance, TP, engine "
        "arguments, pod resources, cost). Data: sizing/data/*.yaml (sources and dates inside).",
    )
    src = p.add_mutually_exclusive_group()
    for s in SETTINGS:
        if not s.flag:
            continue
        group = src if s.key in SOURCE_KEYS else p
        default = s.flag_default
        shown = default is not None and not s.choices and "default" not in s.help
        metavar = s.metavar or {int: "N", float: "X"}.get(s.type) if not s.choices else None
        group.add_argument(s.flag, dest=s.key, type=_type_of(s), choices=s.choices, default=default,
                           metavar=metavar, help=s.help + (f" (default {default})" if shown else ""))
    p.add_argument("--accelerator", metavar="NAME",
                   help="budget one accelerator (a chip, not a vendor): " + ", ".join(catalog.accelerators()))
    p.add_argument("--gpu-memory-gib", type=_checked(float, lambda v: 1 <= v <= 2048, "a number", "in [1, 2048]"),
                   metavar="GIB", help="budget any other NVIDIA GPU instead: the memory CUDA reports for it, in GiB "
                   "(torch.cuda.mem_get_info()[1] / 2**30)")
    p.add_argument("--compute-capability", type=_checked(float, lambda v: 5 <= v < 20, "a number", "in [5, 20)"),
                   default=8.0, metavar="X.Y", help="with --gpu-memory-gib: its compute capability (default 8.0: "
                   "bfloat16, no native fp8)")
    p.add_argument("--interconnect", choices=("nvlink", "pcie"), help="budget: how the tensor-parallel GPUs talk "
                   "(default: as AWS connects the --accelerator; nvlink for --gpu-memory-gib)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--list-models", action="store_true", help="list the built-in model catalog and exit")
    return p


def _architecture(args: argparse.Namespace) -> tuple[str, Architecture]:
    if args.config:
        cfg = catalog.load_config_file(args.config)
        name = cfg.get("_name_or_path") or str(args.config)
    else:
        cfg, _ = catalog.load_model_config(args.model)
        name = args.model
    return name, from_config(cfg, name)


def _budget_json(arch: Architecture, b: GpuBudget | NeuronBudget) -> dict:
    out = b.to_dict()
    out["model_type"] = arch.model_type
    if isinstance(b, NeuronBudget):  # the shared contract, per NeuronCore
        out.update(weights_gib=out["weights_per_core_gib"], activation_gib=0.0, non_torch_gib=0.0,
                   kv_cache_gib=out["kv_cache_per_core_gib"])
    return out


def _budget(args: argparse.Namespace, arch: Architecture) -> GpuBudget | NeuronBudget:
    if args.gpu_memory_gib:
        accel = catalog.custom_gpu(args.gpu_memory_gib, args.compute_capability)
    else:
        accel = catalog.accelerator(args.accelerator)
    if accel.is_neuron:
        return neuron_budget(
            arch, accel, tensor_parallel_size=args.tensor_parallel_size or accel.cores, max_model_len=args.max_model_len,
            max_num_seqs=args.max_num_seqs or args.concurrency, dtype=args.dtype, quantization=args.quantization,
        )
    return gpu_budget(
        arch, accel, max_model_len=args.max_model_len, tensor_parallel_size=args.tensor_parallel_size or 1,
        gpu_memory_utilization=args.gpu_memory_utilization, max_num_seqs=args.max_num_seqs, dtype=args.dtype,
        kv_cache_dtype=args.kv_cache_dtype, quantization=args.quantization, vllm_version=args.vllm_version,
        interconnect_kind=args.interconnect,
    )


def _performance(args: argparse.Namespace, arch: Architecture, budget: GpuBudget | NeuronBudget) -> dict | None:
    """One replica on this accelerator at --concurrency users (or --requests-per-second), with $ per million tokens
    at the cheapest instance type that holds the replica (sizing/performance.py)."""
    if not (args.input_tokens and args.output_tokens) or args.gpu_memory_gib:
        return None  # speed needs the accelerator's bandwidth and FLOPS, which a --gpu-memory-gib GPU lacks
    from .performance import replica_figures

    return replica_figures(arch, catalog.accelerator(args.accelerator), budget, args.quantization,
                           input_tokens=args.input_tokens, output_tokens=args.output_tokens,
                           concurrency=None if args.requests_per_second else args.concurrency,
                           requests_per_second=args.requests_per_second)


def _plan(args: argparse.Namespace, name: str, arch: Architecture) -> DeploymentPlan:
    given = {s.key: getattr(args, s.key) for s in SETTINGS if s.flag and s.key not in SOURCE_KEYS}
    return plan(Workload(model=name, arch=arch, **given))


def _quiet_broken_pipe() -> int:
    """`python -m sizing --json | head`: the reader left; exit quietly, without a traceback at shutdown."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        return _quiet_broken_pipe()


def _main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_models:
        from .report import print_models

        print_models(args.json)
        sys.stdout.flush()
        return 0
    if not (args.model or args.config):
        parser.error("one of --model or --config is required")
    if args.max_model_len is None and args.input_tokens and args.output_tokens:
        args.max_model_len = args.input_tokens + args.output_tokens  # the load's requests, and no longer ones
    if args.max_model_len is None:
        parser.error("--max-model-len is required (or --input-tokens and --output-tokens)")
    try:
        name, arch = _architecture(args)
        if args.accelerator and args.gpu_memory_gib:
            parser.error("--accelerator and --gpu-memory-gib both name the GPU to budget; give one")
        if args.accelerator or args.gpu_memory_gib:
            budget = _budget(args, arch)
            performance = _performance(args, arch, budget)
            if args.json:
                print(json.dumps({**_budget_json(arch, budget), **({"performance": performance} if performance else {})},
                                 indent=2))
            else:
                from .report import print_budget

                print_budget(name, arch, budget, CLI_NAMES)
            sys.stdout.flush()
            return 0  # the verdict is in "fits"; exit 2 is for bad input
        result = _plan(args, name, arch)
    except SizingError as exc:
        print(f"{parser.prog}: error: {exc.render(CLI_NAMES)}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(result.to_dict(CLI_NAMES), indent=2))
    else:
        from .report import print_plan

        dtype_bytes = DTYPE_BYTES[result.dtype]
        print_plan(result, arch, true_kv_bytes_per_token(arch, dtype_bytes), seed_kv_bytes_per_token(arch, dtype_bytes),
                   names=CLI_NAMES)
    sys.stdout.flush()  # a closed pipe fails here, inside main, not at interpreter shutdown
    return 0
