"""python -m sizing: size one model on one accelerator, or plan the cheapest deployment.

    python -m sizing --model Qwen/Qwen3-1.7B --max-model-len 8192 --concurrency 4            # plan
    python -m sizing --model mistralai/Mistral-7B-Instruct-v0.3 --max-model-len 32768 \\
        --concurrency 16                                       # 16 users spread: 3 x g6e.xlarge

--concurrency counts the users of the whole deployment; the plan spreads them over up to --max-replicas replicas
(default 100, the stack file's own bound, so the cheapest fleet is found; --max-replicas 1 plans one replica, as a
stack file does by default). --max-hourly-usd caps the whole fleet. Messages name settings as the CLI's flags.
    python -m sizing --model meta-llama/Llama-3.1-8B --accelerator h100 --tp 1 \\
        --gpu-memory-utilization 0.95 --max-model-len 8192 --json                             # one budget

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
from .errors import CLI_NAMES, SizingError
from .memory import GpuBudget, gpu_budget
from .neuron import NeuronBudget, neuron_budget
from .planner import DeploymentPlan, Workload, plan
from .rules_of_thumb import seed_kv_bytes_per_token, true_kv_bytes_per_token
from .weights import DTYPE_BYTES, QUANTIZATIONS

EXIT_USAGE = 2
# Without --max-replicas the CLI may spread users over as many replicas as the cheapest fleet needs, up to the
# stack file's own bound (config/schema.py Replicas: le=100). A stack file's default is replicas {min: 1, max: 1}.
DEFAULT_MAX_REPLICAS = 100


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


_positive_int = _checked(int, lambda v: v > 0, "a positive integer", "a positive integer")
_non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0", ">= 0")
_fraction = _checked(float, lambda v: 0 < v <= 1, "a number in (0, 1]", "in (0, 1]")
_price = _checked(float, lambda v: v > 0, "dollars per hour", "positive")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m sizing",
        description="Size an LLM the way vLLM accounts memory, and plan the cheapest EC2 instance that holds it.",
        epilog="With --accelerator: the memory budget of one accelerator. Without: the plan (instance, TP, engine "
        "arguments, pod resources, cost). Data: sizing/data/*.yaml (sources and dates inside).",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help="Hugging Face model id (built-in catalog, else fetched from the Hub)")
    src.add_argument("--config", metavar="PATH", help="a config.json (or a folder holding one)")
    p.add_argument("--max-model-len", type=_positive_int, help="longest request in tokens (prompt + output)")
    p.add_argument("--concurrency", type=_positive_int, default=1,
                   help="requests of max-model-len served at once by the whole deployment, all replicas together (plan)")
    p.add_argument("--min-replicas", type=_non_negative_int, default=1, help="fewest replicas (plan; default 1)")
    p.add_argument("--max-replicas", type=_positive_int, default=DEFAULT_MAX_REPLICAS,
                   help=f"most replicas the users may be spread over (plan; default {DEFAULT_MAX_REPLICAS}, "
                   "i.e. as many as the cheapest fleet needs; a stack file's default is 1)")
    p.add_argument("--spread-zones", type=_positive_int, default=1, metavar="N",
                   help="spread replicas over N availability zones, at least 2 replicas when N >= 2 (plan; "
                   "default 1; prod stacks spread)")
    p.add_argument("--family", choices=("nvidia", "neuron", "any"), default="nvidia", help="accelerator family (plan)")
    p.add_argument("--instance", metavar="TYPE", help="pin the instance type (plan); an error says by how much it falls short")
    p.add_argument("--max-hourly-usd", type=_price, metavar="USD", help="price cap of the whole fleet, $/h (plan)")
    p.add_argument("--accelerator", metavar="NAME", help="budget one accelerator: " + ", ".join(catalog.accelerators()))
    p.add_argument("--tp", type=_positive_int, help="tensor-parallel degree (budget; pins it in a plan)")
    p.add_argument("--gpu-memory-utilization", type=_fraction, help="fraction of GPU memory vLLM may use (default: the vLLM version's)")
    p.add_argument("--max-num-seqs", type=_positive_int, help="batch cap (budget; default: vLLM's for the GPU, or --concurrency on Neuron)")
    p.add_argument("--dtype", choices=("auto", "bfloat16", "float16", "float32"), default="auto")
    p.add_argument("--kv-cache-dtype", choices=("auto", "fp8"), default="auto")
    p.add_argument("--quantization", choices=QUANTIZATIONS,
                   help="weight format to serve: the checkpoint's own (int4/int8/fp8 checkpoints), or fp8 on the fly "
                   "from a 16-bit checkpoint (vLLM --quantization fp8)")
    p.add_argument("--vllm-version", help="vLLM version whose defaults apply (default: the pinned image's)")
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
    accel = catalog.accelerator(args.accelerator)
    if accel.is_neuron:
        return neuron_budget(
            arch, accel, tensor_parallel_size=args.tp or accel.cores, max_model_len=args.max_model_len,
            max_num_seqs=args.max_num_seqs or args.concurrency, dtype=args.dtype, quantization=args.quantization,
        )
    return gpu_budget(
        arch, accel, max_model_len=args.max_model_len, tensor_parallel_size=args.tp or 1,
        gpu_memory_utilization=args.gpu_memory_utilization, max_num_seqs=args.max_num_seqs, dtype=args.dtype,
        kv_cache_dtype=args.kv_cache_dtype, quantization=args.quantization, vllm_version=args.vllm_version,
    )


def _plan(args: argparse.Namespace, name: str, arch: Architecture) -> DeploymentPlan:
    return plan(Workload(
        model=name, arch=arch, max_model_len=args.max_model_len, concurrency=args.concurrency, family=args.family,
        instance_type=args.instance, tensor_parallel_size=args.tp, max_hourly_usd=args.max_hourly_usd,
        dtype=args.dtype, kv_cache_dtype=args.kv_cache_dtype, quantization=args.quantization,
        gpu_memory_utilization=args.gpu_memory_utilization, vllm_version=args.vllm_version,
        min_replicas=args.min_replicas, max_replicas=args.max_replicas, spread_zones=args.spread_zones,
    ))


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
    if args.max_model_len is None:
        parser.error("--max-model-len is required")
    try:
        name, arch = _architecture(args)
        if args.accelerator:
            budget = _budget(args, arch)
            if args.json:
                print(json.dumps(_budget_json(arch, budget), indent=2))
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
