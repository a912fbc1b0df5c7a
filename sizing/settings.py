"""Every setting of a workload, described once: its key, type, default, bounds, stack-file key, CLI flag, vLLM flag
and help. The stack-file schema (config/schema.py), the CLI parser (sizing/cli.py), the names messages use
(sizing/errors.py STACK_NAMES, CLI_NAMES), the flags extraEngineArgs may not repeat (plan/models.py) and the
Workload a stack file or the CLI builds are all derived from SETTINGS, as vLLM's engine/arg_utils.py builds its
CLI from its config fields.

Adding a setting is one change here plus its field on `Workload` (sizing/plans.py), which the planner reads:

    Setting("ttft_p95_ms", "the 95th-percentile time to first token the fleet must keep, in ms", float,
            gt=0, stack="ttftP95Ms", flag="--ttft-p95-ms")

Its stack key then exists (models[i].ttftP95Ms, camelCase of the field name, typed and bounded), so does its CLI
flag, a message naming «ttft_p95_ms» reads `ttftP95Ms` in a stack error and `--ttft-p95-ms` in the CLI, and both
front ends pass it to Workload(ttft_p95_ms=...). `stack=None` or `flag=None` leaves it out of that front end. A
nested key (`slo.itlMs`, `replicas.min`) lands in its group's model in config/schema.py (`_group`, `Replicas`); a new
group is one `_group` line there. Type errors in a stack file then say `allowed()` ("must be a positive number").

Words: the *vendor* is who makes the accelerator (nvidia | neuron | any; the stack key is `accelerator`, kept so
that existing stack files stay valid); an *accelerator* is one chip (h100, l4, inferentia2: the CLI's
`--accelerator`); an *instance type* is an EC2 type (g6.xlarge).

A leaf module: no project imports, so errors, memory, weights and config can all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DTYPES = ("auto", "bfloat16", "float16", "float32")  # vLLM --dtype values the project serves
KV_CACHE_DTYPE_CHOICES = ("auto", "fp8")  # what a user picks; vLLM also takes fp8_e4m3 and fp8_e5m2 (memory.py)
QUANTIZATIONS = ("fp8", "int8", "int4")  # weight formats to serve (sizing/weights.py resolves them)
VENDORS = ("nvidia", "neuron", "any")
MODEL_ID_PATTERN = r"^[\w.-]+/[\w.-]+$"


@dataclass(frozen=True)
class Setting:
    key: str  # the Workload field, and «key» in messages
    help: str  # one phrase, for --help, the schema's description and the README
    type: type = str  # int | float | str
    default: Any = None  # None: unset (the planner chooses), or required when `required`
    required: bool = False
    choices: tuple[Any, ...] | None = None
    gt: float | None = None  # bounds, as pydantic's Field takes them
    ge: float | None = None
    le: float | None = None
    pattern: str | None = None
    form: str | None = None  # the pattern in words, for messages
    stack: str | None = None  # key under llm-eks:models[i] ('replicas.min': nested); None: not a model key
    stack_words: str | None = None  # how messages name it in a stack file when no model key sets it
    flag: str | None = None  # the CLI flag; None: not on the CLI
    cli_default: Any = None  # when the CLI's default differs from the stack file's (and is not None)
    metavar: str | None = None  # default: N for integers, X for numbers
    engine_flag: str | None = None  # the vLLM flag the plan writes from it (extraEngineArgs may not repeat it)

    @property
    def field(self) -> str | None:
        """The schema's field name for a top-level model key (snake_case of the camelCase key)."""
        if not self.stack or "." in self.stack:
            return None
        return "".join("_" + c.lower() if c.isupper() else c for c in self.stack)

    @property
    def stack_name(self) -> str:
        return self.stack or self.stack_words or self.key

    @property
    def flag_default(self) -> Any:
        return self.default if self.cli_default is None else self.cli_default

    def allowed(self) -> str:
        """What the setting allows, in words: 'one of auto, fp8', 'a positive integer at most 4096'."""
        if self.choices:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.form:
            return self.form
        kind = {int: "integer", float: "number", str: "text"}[self.type]
        if self.ge is not None and self.le is not None:
            return f"an {kind} from {_num(self.ge)} to {_num(self.le)}" if kind == "integer" else \
                f"a {kind} from {_num(self.ge)} to {_num(self.le)}"
        if self.gt == 0:
            words = f"a positive {kind}"
        elif self.gt is not None:
            words = f"a {kind} above {_num(self.gt)}"
        elif self.ge is not None:
            words = f"an {kind} >= {_num(self.ge)}" if kind == "integer" else f"a {kind} >= {_num(self.ge)}"
        else:
            words = "an integer" if kind == "integer" else f"a {kind}" if kind == "number" else kind
        return words + (f" at most {_num(self.le)}" if self.le is not None else "")

    def ok(self, value: Any) -> bool:
        return ((self.choices is None or value in self.choices) and (self.gt is None or value > self.gt)
                and (self.ge is None or value >= self.ge) and (self.le is None or value <= self.le))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


SETTINGS: tuple[Setting, ...] = (
    Setting("model", "Hugging Face model id (the built-in catalog, else fetched from the Hub)", required=True,
            pattern=MODEL_ID_PATTERN, form="a Hugging Face id of the form org/name (e.g. Qwen/Qwen3-1.7B)",
            stack="model", flag="--model", metavar="ID"),
    Setting("config", "a local config.json (or a folder holding one), for a model outside the built-in catalog "
            "offline", stack="config", flag="--config", metavar="PATH"),
    Setting("max_model_len", "longest request in tokens (prompt + output)", int, required=True, gt=0, le=10_000_000,
            stack="maxModelLen", flag="--max-model-len", engine_flag="max-model-len"),
    Setting("concurrency", "requests of max_model_len served at once by the whole deployment, all replicas together",
            int, default=1, gt=0, le=4096, stack="concurrency", flag="--concurrency"),
    Setting("input_tokens", "prompt tokens of a typical request (the load the latency target is planned for)", int,
            gt=0, le=10_000_000, stack="load.inputTokens", flag="--input-tokens"),
    Setting("output_tokens", "output tokens of a typical request", int, gt=0, le=10_000_000,
            stack="load.outputTokens", flag="--output-tokens"),
    Setting("requests_per_second", "requests arriving per second at the whole deployment (instead of concurrent "
            "users); the fleet must sustain it without queueing", float, gt=0, stack="load.requestsPerSecond",
            flag="--requests-per-second"),
    Setting("ttft_p90_ms", "the 90th-percentile time to first token the fleet must keep at the load, ms", float,
            gt=0, stack="slo.ttftP90Ms", flag="--ttft-p90-ms"),
    Setting("itl_ms", "the inter-token latency (time per output token) the fleet must keep at the load, ms", float,
            gt=0, stack="slo.itlMs", flag="--itl-ms"),
    Setting("vendor", "accelerator vendor: nvidia, neuron (Inferentia/Trainium) or any (the cheaper)",
            default="nvidia", choices=VENDORS, stack="accelerator", flag="--vendor"),
    Setting("instance_type", "pin the EC2 instance type; an error says by how much it falls short",
            stack="instanceType", flag="--instance", metavar="TYPE"),
    Setting("tensor_parallel_size", "pin the tensor-parallel degree (accelerators, or NeuronCores, per replica)",
            int, gt=0, le=64, stack="tensorParallelSize", flag="--tp", engine_flag="tensor-parallel-size"),
    Setting("max_hourly_usd", "price cap of the whole fleet, $/h", float, gt=0, stack="maxHourlyUsd",
            flag="--max-hourly-usd", metavar="USD"),
    Setting("dtype", "weights' and activations' dtype (auto: the checkpoint's; float16 on GPUs without bfloat16)",
            default="auto", choices=DTYPES, stack="dtype", flag="--dtype", engine_flag="dtype"),
    Setting("kv_cache_dtype", "KV-cache dtype; fp8 halves it (GPUs only)", default="auto",
            choices=KV_CACHE_DTYPE_CHOICES, stack="kvCacheDtype", flag="--kv-cache-dtype",
            engine_flag="kv-cache-dtype"),
    Setting("quantization", "weight format to serve: the checkpoint's own (int4/int8/fp8 checkpoints), or fp8 on the "
            "fly from a 16-bit checkpoint (vLLM --quantization fp8)", choices=QUANTIZATIONS, stack="quantization",
            flag="--quantization", engine_flag="quantization"),
    Setting("gpu_memory_utilization", "fraction of GPU memory vLLM may use (default: the vLLM version's; GPUs only)",
            float, gt=0, le=1, stack="gpuMemoryUtilization", flag="--gpu-memory-utilization",
            engine_flag="gpu-memory-utilization"),
    Setting("max_num_seqs", "cap on the requests one replica batches at once (default: vLLM's for the GPU, or the "
            "replica's share of concurrency if larger; Neuron: the share); a cap below the share is refused",
            int, gt=0, le=4096, stack="maxNumSeqs", flag="--max-num-seqs", engine_flag="max-num-seqs"),
    Setting("vllm_version", "vLLM release whose accounting applies, 0.19.0 up to the pinned image's (the default)",
            stack_words="the vLLM image version", flag="--vllm-version", metavar="VERSION"),
    Setting("min_replicas", "fewest replicas", int, default=1, ge=0, le=100, stack="replicas.min",
            flag="--min-replicas"),
    Setting("max_replicas", "most replicas the users may be spread over (the CLI's default 100 finds the cheapest "
            "fleet; a stack file's default is 1)", int, default=1, ge=1, le=100, stack="replicas.max",
            flag="--max-replicas", cli_default=100),
    Setting("spread_zones", "spread replicas over N availability zones, at least 2 replicas when N >= 2 (a prod "
            "stack spreads over its zones)", int, default=1, ge=1, stack_words="environment",
            flag="--spread-zones", metavar="N"),
)
BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}

# key id -> how the stack file (llm-eks:models[i].<key>) and the CLI (python -m sizing) call it.
STACK_NAMES: dict[str, str] = {s.key: s.stack_name for s in SETTINGS}
CLI_NAMES: dict[str, str] = {s.key: s.flag or s.key for s in SETTINGS}
# The vLLM flag -> the stack key that sets it.
ENGINE_FLAG_KEYS: dict[str, str] = {s.engine_flag: s.stack_name for s in SETTINGS if s.engine_flag}
