"""vLLM's memory budget per GPU, computed the way the engine does it (v1 engine, 0.19+).

    requested   = total_memory x gpu_memory_utilization                    (gpu_worker.request_memory)
    kv_avail    = requested - weights - activation peak - non-torch growth  (determine_available_memory)
                  [- CUDA-graph estimate, from 0.20]
    page        = per layer, from its KV cache spec (kv_cache.py: full, sliding, chunked, MLA, Mamba state)
    num_blocks  = kv_avail // (pages of one group's layers)               (get_kv_cache_config_from_groups)
    kv tokens   = num_blocks // groups x block_size, or concurrency x max_model_len (newer releases)
    startup     = one request of max_model_len must fit                    (_check_enough_kv_cache_memory)
    headroom    = total - requested must hold the CUDA context, the graph pool and the sampler warm-up

Weights and KV arithmetic are exact; the activation peak and the graph pool are measured quantities in vLLM,
modelled here from the engine's profiling shapes with constants fitted to published vLLM 0.19 H100 logs
(sizing/data/engine.yaml).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

from .architecture import Architecture
from .catalog import GIB, Accelerator, engine_facts, interconnect
from .errors import SizingError
from .kv_cache import CacheContext, KVCacheConfig, Limits, kv_cache_config
from .settings import DTYPES
from .state_cache import cache_context, state_blocks_cap
from .weights import (
    DTYPE_BYTES,
    WeightFormat,
    mxfp4_expert_align,
    resolve_format,
    rotary_cache_bytes,
    served_weight_bytes,
    vllm_quantization,
)

KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")


def release(version: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a vLLM version string (0.19.1, v0.20.2, 0.32.0rc1), or None if it is not one."""
    m = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", version.strip())
    return (int(m[1]), int(m[2]), int(m[3] or 0)) if m else None


def facts_for(version: str | None) -> tuple[str, dict[str, Any]]:
    """The engine facts of the release line of `version` (e.g. 0.19.1 -> the 0.19 entry); only the releases
    engine.yaml models, oldest_version to default_version (the pinned image's), are accepted."""
    data = engine_facts()
    version = version or data["default_version"]
    wanted = release(version)
    if wanted is None:
        raise SizingError(f"«vllm_version» '{version}' is not a vLLM version of the form 0.19.1", key="vllm_version")
    oldest, newest = data["oldest_version"], data["default_version"]
    if not release(oldest) <= wanted <= release(newest):
        raise SizingError(f"«vllm_version» {version} is outside the vLLM releases modelled, {oldest} to {newest}",
                          key="vllm_version")
    lines = sorted((release(k), k) for k in data["versions"])
    chosen = [k for v, k in lines if v <= wanted]
    return version, data["versions"][chosen[-1]]


def gpu_class(accel: Accelerator, f: dict[str, Any]) -> str:
    """Which of vLLM's default batch sizes a GPU gets (engine/arg_utils.py: by total memory, A100 excluded from the
    large class; from 0.28 a class of its own at >= 160 GiB): "huge", "large" or "small"."""
    if accel.usable_gib >= f.get("huge_gpu_min_gib", math.inf):
        return "huge"
    return "large" if accel.usable_gib >= f["large_gpu_min_gib"] and not accel.key.startswith("a100") else "small"


def resolve_dtype(arch: Architecture, accel: Accelerator, dtype: str) -> str:
    """vLLM's --dtype resolution: auto takes the checkpoint dtype, downcasting float32, and float16 on GPUs
    without bfloat16 (T4)."""
    if dtype not in DTYPES:
        raise SizingError(f"«dtype» '{dtype}' is not one of {', '.join(DTYPES)}", key="dtype")
    if dtype == "auto":
        dtype = arch.torch_dtype
        if dtype == "float32":  # "Downcasting torch.float32 to torch.bfloat16" (or float16)
            dtype = "bfloat16"
        if dtype == "bfloat16" and not accel.bf16:
            dtype = "float16"
    elif dtype == "bfloat16" and not accel.bf16:
        raise SizingError(f"{accel.name} has no bfloat16 support (compute capability < 8.0); set «dtype» float16", key="dtype")
    if dtype == "float16" and arch.model_type == "gemma2":
        # vLLM: Gemma 2 overflows in float16 and refuses it; on GPUs without bfloat16 it cannot run at all.
        raise SizingError(f"{arch.model_type} does not run in float16 (numerical overflow); it needs bfloat16, which {accel.name} lacks"
                          if not accel.bf16 else f"{arch.model_type} does not run in float16; set «dtype» bfloat16", key="dtype")
    return dtype


def check_context(arch: Architecture, max_model_len: int) -> None:
    """vLLM refuses a max_model_len beyond the model's context window (unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1)."""
    if max_model_len <= 0:
        raise SizingError(f"«max_model_len» must be positive (got {max_model_len})", key="max_model_len")
    window = arch.context_window
    if max_model_len > window:
        raise SizingError(
            f"«max_model_len» {max_model_len} exceeds the context window of {arch.name or arch.model_type} "
            f"({window} tokens, from config.json max_position_embeddings and rope scaling)", key="max_model_len"
        )


def tensor_parallel_sizes(arch: Architecture) -> list[int]:
    """The degrees vLLM accepts for `arch`: divisors of the attention heads that split or replicate the KV heads."""
    kv = arch.num_kv_heads
    return [t for t in range(1, arch.num_heads + 1)
            if arch.num_heads % t == 0 and (arch.mla or kv % t == 0 or t % kv == 0)]


def check_tensor_parallel(arch: Architecture, tp: int) -> None:
    """vLLM needs the attention heads to split evenly, and KV heads to split or replicate evenly."""
    valid = ", ".join(map(str, tensor_parallel_sizes(arch)))
    if tp < 1:
        raise SizingError(f"«tensor_parallel_size» must be at least 1 (got {tp})", key="tensor_parallel_size")
    if arch.num_heads % tp:
        raise SizingError(
            f"«tensor_parallel_size» {tp} does not divide the {arch.num_heads} attention heads of {arch.name or arch.model_type}; "
            f"valid: {valid}", key="tensor_parallel_size")
    kv = arch.num_kv_heads
    if not arch.mla and kv % tp and tp % kv:
        raise SizingError(f"«tensor_parallel_size» {tp} neither divides nor is a multiple of the {kv} KV heads; "
                          f"valid: {valid}", key="tensor_parallel_size")


# --- KV cache ----------------------------------------------------------------------------------------------


def kv_cache_of(arch: Architecture, ctx: CacheContext) -> KVCacheConfig:
    """One rank's KV cache: each cache the architecture registers, as a spec, grouped as vLLM groups them."""
    return kv_cache_config([cache.spec(ctx) for cache in arch.caches])


# --- the budget ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuBudget:
    """The memory budget of one GPU (one tensor-parallel rank) for one vLLM instance. Sizes in GiB."""

    accelerator: str
    vllm_version: str
    tensor_parallel_size: int
    gpu_memory_utilization: float
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    dtype: str
    kv_cache_dtype: str
    weight_format: str
    parameters: int
    total_gib: float
    requested_gib: float
    weights_gib: float
    activation_gib: float
    non_torch_gib: float
    cudagraph_gib: float
    cudagraph_in_budget: bool
    kv_cache_gib: float
    kv_bytes_per_token: int
    num_blocks: int
    kv_cache_tokens: int
    max_concurrency: float
    needed_kv_gib: float
    fits: bool
    estimated_max_model_len: int
    headroom_gib: float
    headroom_needed_gib: float
    headroom_ok: bool
    vllm_quantization: str | None = None  # the --quantization vLLM is given (None: none, or the checkpoint's own)
    block_size: int = 16  # tokens per block; hybrid models raise it so an attention page holds a state page
    max_num_seqs_cap: int | None = None  # hybrid models: one state block per decoding sequence (num_blocks)

    @property
    def seqs_ok(self) -> bool:
        return self.max_num_seqs_cap is None or self.max_num_seqs <= self.max_num_seqs_cap

    @property
    def ok(self) -> bool:
        return self.fits and self.headroom_ok and self.seqs_ok

    def shortfall_gib(self) -> float:
        """How much more memory per GPU this workload needs (0 when it fits)."""
        return max(0.0, self.needed_kv_gib - self.kv_cache_gib, self.headroom_needed_gib - self.headroom_gib)

    def problem(self) -> str | None:
        if not self.fits:
            if self.kv_cache_gib <= 0:
                return (f"no memory left for the KV cache: weights {self.weights_gib:.2f} + activation "
                        f"{self.activation_gib:.2f} + non-torch {self.non_torch_gib:.2f} GiB exceed the "
                        f"{self.requested_gib:.2f} GiB budget by {-self.kv_cache_gib:.2f} GiB")
            return (f"one {self.max_model_len}-token request needs {self.needed_kv_gib:.2f} GiB of KV cache, "
                    f"{self.kv_cache_gib:.2f} GiB is left (short by {self.needed_kv_gib - self.kv_cache_gib:.2f} GiB; "
                    f"the longest context that fits is {self.estimated_max_model_len})")
        if not self.headroom_ok:
            return (f"the {self.headroom_gib:.2f} GiB outside the budget cannot hold the CUDA context, graph pool and "
                    f"sampler warm-up ({self.headroom_needed_gib:.2f} GiB); lower «gpu_memory_utilization»")
        if not self.seqs_ok:
            return (f"«max_num_seqs» {self.max_num_seqs} exceeds the {self.max_num_seqs_cap} state blocks of this hybrid "
                    f"model (one per decoding sequence; vLLM refuses to start); set «max_num_seqs» to at most "
                    f"{self.max_num_seqs_cap}")
        return None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 4)
        return out

    # --- the interface the planner uses for any vendor's budget (sizing/budget.py Budget) ---

    vendor: ClassVar[str] = "nvidia"
    unit: ClassVar[str] = "GPU"

    def shortfall_for(self, share: int) -> float:
        """How much more memory per GPU `share` full-length requests need (0 when they fit)."""
        return max(0.0, share * self.needed_kv_gib - self.kv_cache_gib, self.headroom_needed_gib - self.headroom_gib)

    def replica_gib(self, share: int) -> float:
        """Memory one replica needs over all its ranks for `share` full-length requests."""
        per_rank = self.weights_gib + self.activation_gib + self.non_torch_gib + self.needed_kv_gib * share
        return per_rank * self.tensor_parallel_size

    def engine_args(self) -> list[str]:
        """The vLLM flags this budget assumed, beyond length, TP and batch."""
        args = ["--gpu-memory-utilization", f"{self.gpu_memory_utilization:g}", "--dtype", self.dtype,
                "--kv-cache-dtype", self.kv_cache_dtype]
        if self.vllm_quantization:
            args += ["--quantization", self.vllm_quantization]
        return args

    def describe(self, accelerator_name: str, share: int, host_needed_gib: float) -> str:
        """One replica's memory in a sentence, for the plan's explanation."""
        tp = self.tensor_parallel_size
        return (f"each replica has {tp} x {accelerator_name} (TP {tp}); per GPU {self.weights_gib:.2f} GiB weights "
                f"({self.weight_format}) + {self.activation_gib:.2f} activation + {self.non_torch_gib:.2f} non-torch "
                f"leave {self.kv_cache_gib:.2f} GiB of KV cache = {self.kv_cache_tokens:,} tokens, "
                f"{self.max_concurrency:.1f} full-length requests at once for its {share} (utilization "
                f"{self.gpu_memory_utilization:g}, vLLM {self.vllm_version}).")


def _activation_bytes(arch: Architecture, fmt: WeightFormat, tp: int, tokens: int, seqs: int, f: dict) -> float:
    """Peak torch memory of vLLM's profile run.

    The run is a forward over max_num_batched_tokens tokens, then a dummy sampler run over max_num_seqs rows of
    full-vocabulary logits (logits, their float32 copy and the top-k/top-p sort indices). Dense activations are
    freed between the two, so the larger dominates; fused-MoE intermediate caches (gate/up output, activation
    output and expert output per routed token) stay allocated, so they add.
    """
    dtype_bytes = DTYPE_BYTES[fmt.dtype]
    rows = min(seqs, tokens)  # _dummy_run spreads the tokens over min(max_num_seqs, tokens) requests
    sampler = rows * arch.vocab_size * (dtype_bytes + f["sampler_extra_bytes"])
    dense = [t.out_features for t in arch.tensors if t.name == "mlp.gate_proj"]
    forward = tokens * 3 * math.ceil(max(dense or [0]) / tp) * dtype_bytes
    moe = 0
    if arch.moe:
        width = 3 * math.ceil(arch.moe.expert_intermediate_size / tp) + arch.hidden_size
        moe = tokens * arch.moe.experts_per_token * width * dtype_bytes
    # Multimodal models: profile_run keeps the encoder outputs of the profiled items (as many of the largest image
    # as the encoder budget, max(max_num_batched_tokens, one image), holds; text-width embeddings) in the encoder
    # cache through the forward and sampler runs.
    per_item = arch.extras.get("mm_tokens_per_image", 0)
    items = max(1, max(tokens, per_item) // per_item) if per_item else 0
    encoder = items * per_item * arch.hidden_size * dtype_bytes
    return f["activation_base_gib"] * GIB + max(sampler, forward) + moe + encoder


def non_torch_bytes(tp: int, link: str, f: dict) -> float:
    """Non-torch growth while vLLM profiles, inside the budget: NCCL's lazily connected buffers grow with what the
    interconnect offers (NVLink SHARP on NVSwitch; plain ring/tree buffers on PCIe), engine.yaml non_torch_gib."""
    if tp == 1:
        return f["non_torch_gib"]["tp1"] * GIB
    return f["non_torch_gib"]["pcie" if link == "pcie" else "nvlink"] * GIB


def _cudagraph_gib(arch: Architecture, f: dict) -> float:
    """The CUDA-graph memory the budget accounts for: the captured pool, outside the budget (up to 0.19), or
    vLLM's profiled estimate, taken from the KV budget (from 0.20; engine.yaml cudagraph_estimate)."""
    if f["cudagraph_in_budget"]:
        e = f["cudagraph_estimate"]
        return e["base_gib"] + e["per_layer_gib"] * arch.num_layers + (e["moe_extra_gib"] if arch.moe else 0.0)
    return f["cudagraph_base_gib"] + f["cudagraph_per_layer_gib"] * arch.num_layers + (
        f["cudagraph_moe_extra_gib"] if arch.moe else 0.0
    )


def gpu_budget(
    arch: Architecture,
    accel: Accelerator,
    *,
    max_model_len: int,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float | None = None,
    max_num_seqs: int | None = None,
    max_num_batched_tokens: int | None = None,
    dtype: str = "auto",
    kv_cache_dtype: str = "auto",
    quantization: str | None = None,
    vllm_version: str | None = None,
    interconnect_kind: str | None = None,
) -> GpuBudget:
    """vLLM's budget on one GPU of `accel` for `arch` at the given engine arguments; the ranks talk over
    `interconnect_kind` (nvlink | pcie; default: how AWS connects this GPU, catalog.interconnect)."""
    if accel.is_neuron:
        raise SizingError(f"{accel.name} is a Neuron device; vLLM's GPU budget does not apply (use the neuron planner)")
    check_context(arch, max_model_len)
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise SizingError(f"«kv_cache_dtype» '{kv_cache_dtype}' is not one of {', '.join(KV_CACHE_DTYPES)}", key="kv_cache_dtype")
    tp = tensor_parallel_size
    check_tensor_parallel(arch, tp)
    version, f = facts_for(vllm_version)
    util = f["default_gpu_memory_utilization"] if gpu_memory_utilization is None else gpu_memory_utilization
    if not 0 < util <= 1:
        raise SizingError(f"«gpu_memory_utilization» must be in (0, 1] (got {util})", key="gpu_memory_utilization")
    size = gpu_class(accel, f)
    if (max_num_seqs is not None and max_num_seqs <= 0) or (max_num_batched_tokens is not None and max_num_batched_tokens <= 0):
        raise SizingError("max_num_seqs and max_num_batched_tokens must be positive")
    seqs = max_num_seqs or f["max_num_seqs"][size]
    # arg_utils: defaulted values are capped, batched tokens by seqs x max_model_len and seqs by batched tokens.
    tokens = max_num_batched_tokens or min(f["max_num_batched_tokens"][size], seqs * max_model_len)
    if max_num_seqs is None:
        seqs = min(seqs, tokens)

    dtype = resolve_dtype(arch, accel, dtype)
    fmt = resolve_format(arch, dtype, quantization)
    if fmt.scheme == "mxfp4":
        fmt = replace(fmt, expert_align=mxfp4_expert_align(accel.compute_capability, f["mxfp4_expert_align"]))
    method = vllm_quantization(arch, quantization, accel.compute_capability, f["quantization"])
    kv_bytes = 1 if kv_cache_dtype.startswith("fp8") else DTYPE_BYTES[dtype]

    total = accel.usable_gib * GIB
    requested = math.ceil(total * util)
    weights = served_weight_bytes(arch, fmt, tp) + rotary_cache_bytes(arch, fmt)
    activation = _activation_bytes(arch, fmt, tp, tokens, seqs, f)
    non_torch = non_torch_bytes(tp, interconnect_kind or interconnect(accel.key), f)
    cudagraph = _cudagraph_gib(arch, f) * GIB
    kv_avail = requested - weights - activation - non_torch - (cudagraph if f["cudagraph_in_budget"] else 0)

    ctx = cache_context(arch.caches, CacheContext(tp, kv_bytes, DTYPE_BYTES[dtype], f["block_size"],
                                                     compute_capability=accel.compute_capability), version)
    kv = kv_cache_of(arch, ctx)
    in_flight = f["in_flight_batches"] * tokens
    check = f["kv_startup_check"]
    limits = Limits(max_model_len, in_flight)
    num_blocks = kv.num_blocks(kv_avail)
    kv_tokens = kv.tokens(num_blocks, limits, f["kv_tokens_reported"])
    # Newer releases plan against the blocks left once BlockPool's null block is held back.
    usable = kv_avail - (kv.bytes_per_block if check == "groups" else 0)

    def needed(length: int) -> int:
        """KV bytes one request of `length` tokens needs (vLLM's startup check)."""
        return kv.needed_bytes(Limits(length, in_flight), check)

    need = needed(max_model_len)
    fits = usable > 0 and need <= usable
    # vLLM's estimate_max_model_len: the longest request that still fits (binary search).
    lo, hi = 0, max(max_model_len, 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if usable > 0 and needed(mid) <= usable:
            lo = mid
        else:
            hi = mid - 1
    concurrency = kv.max_concurrency(num_blocks, limits)

    headroom = total - requested
    context = (f["cuda_context_gib"]["tp1"] if tp == 1 else f["cuda_context_gib"]["tp_multi"]) * GIB
    warmup = seqs * arch.vocab_size * 4  # the sampler's float32 logits, allocated after the KV cache
    headroom_needed = context + (0 if f["cudagraph_in_budget"] else cudagraph) + warmup
    return GpuBudget(
        accelerator=accel.key,
        vllm_version=version,
        tensor_parallel_size=tp,
        gpu_memory_utilization=util,
        max_model_len=max_model_len,
        max_num_seqs=seqs,
        max_num_batched_tokens=tokens,
        dtype=dtype,
        kv_cache_dtype=kv_cache_dtype,
        weight_format=fmt.label,
        parameters=arch.parameters,
        total_gib=total / GIB,
        requested_gib=requested / GIB,
        weights_gib=weights / GIB,
        activation_gib=activation / GIB,
        non_torch_gib=non_torch / GIB,
        cudagraph_gib=cudagraph / GIB,
        cudagraph_in_budget=bool(f["cudagraph_in_budget"]),
        kv_cache_gib=kv_avail / GIB,
        kv_bytes_per_token=kv.kv_bytes_per_token,
        num_blocks=num_blocks,
        kv_cache_tokens=kv_tokens,
        max_concurrency=concurrency,
        needed_kv_gib=need / GIB,
        fits=fits,
        estimated_max_model_len=lo,
        headroom_gib=headroom / GIB,
        headroom_needed_gib=headroom_needed / GIB,
        headroom_ok=headroom >= headroom_needed,
        vllm_quantization=method,
        block_size=ctx.block_size,
        max_num_seqs_cap=num_blocks if state_blocks_cap(arch.caches, version) else None,
    )
