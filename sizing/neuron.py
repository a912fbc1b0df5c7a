"""vLLM on AWS Neuron (Inferentia2, Trainium): the per-NeuronCore budget.

vllm-neuron compiles the model with NxD Inference for a fixed tensor-parallel degree (= NeuronCores used), batch
(max_num_seqs) and sequence length, and allocates the KV cache up front and contiguously: one max_model_len block
per sequence. So the budget per core is static: its shard of the weights plus its shard of max_num_seqs x
max_model_len tokens of KV, within the core's HBM less a runtime reserve. Concurrency is exactly max_num_seqs.
KV heads are sharded when TP divides them, replicated when TP is a multiple of them, and otherwise NxDI converts
the model to full multi-head attention (GQA.CONVERT_TO_MHA), which multiplies the KV cache.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from .architecture import Architecture
from .catalog import GIB, Accelerator, engine_facts
from .errors import SizingError
from .weights import DTYPE_BYTES, resolve_format, weight_bytes

NEURON_DTYPES = ("auto", "bfloat16", "float16")


@dataclass(frozen=True)
class NeuronBudget:
    """One NeuronCore's share of a compiled model (sizes in GiB)."""

    accelerator: str
    vllm_version: str
    tensor_parallel_size: int
    devices: int
    max_model_len: int
    max_num_seqs: int
    dtype: str
    weight_format: str
    parameters: int
    attention_sharding: str  # sharded | replicated | converted-to-mha
    kv_heads_per_core: int
    hbm_per_core_gib: float
    usable_per_core_gib: float
    weights_per_core_gib: float
    kv_cache_per_core_gib: float
    kv_bytes_per_token: int  # per core
    kv_cache_tokens: int
    max_concurrency: int
    fits: bool

    @property
    def ok(self) -> bool:
        return self.fits

    @property
    def needed_per_core_gib(self) -> float:
        return self.weights_per_core_gib + self.kv_cache_per_core_gib

    def shortfall_gib(self) -> float:
        return max(0.0, self.needed_per_core_gib - self.usable_per_core_gib)

    def problem(self) -> str | None:
        if self.fits:
            return None
        return (f"each NeuronCore needs {self.weights_per_core_gib:.2f} GiB of weights + {self.kv_cache_per_core_gib:.2f} GiB "
                f"of KV cache ({self.max_num_seqs} x {self.max_model_len} tokens) but has {self.usable_per_core_gib:.2f} GiB "
                f"(short by {self.shortfall_gib():.2f} GiB at TP {self.tensor_parallel_size})")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}

    # --- the interface the planner uses for any vendor's budget (sizing/budget.py Budget) ---

    vendor: ClassVar[str] = "neuron"
    unit: ClassVar[str] = "NeuronCore"
    gpu_memory_utilization: ClassVar[None] = None  # the KV cache is allocated at compile time, not from a fraction
    vllm_quantization: ClassVar[None] = None  # vllm-neuron compiles 16-bit checkpoints only (neuron_unsupported)
    estimated_max_model_len: ClassVar[None] = None  # the compiled length is max_model_len itself

    @property
    def kv_cache_gib(self) -> float:
        return self.kv_cache_per_core_gib

    def shortfall_for(self, share: int) -> float:
        """The batch is compiled for the share, so the budget already holds it."""
        return self.shortfall_gib()

    def replica_gib(self, share: int) -> float:
        return self.needed_per_core_gib * self.tensor_parallel_size

    def engine_args(self) -> list[str]:
        # vllm-neuron: contiguous KV, one block of max_model_len per sequence. Without prefix caching its platform
        # sets block_size = max_model_len itself (vllm_neuron/platform.py check_and_update_config); vLLM's CLI parser
        # refuses --block-size above 256 (0.16 CacheConfig BlockSize), so the flag is not passed.
        return ["--dtype", self.dtype, "--no-enable-prefix-caching"]

    def describe(self, accelerator_name: str, share: int, host_needed_gib: float) -> str:
        tp = self.tensor_parallel_size
        return (f"each replica has {self.devices} x {accelerator_name} = {tp} NeuronCores (TP {tp}); per core "
                f"{self.weights_per_core_gib:.2f} GiB weights + {self.kv_cache_per_core_gib:.2f} GiB KV cache of "
                f"{self.usable_per_core_gib:.1f} usable (batch {self.max_num_seqs} compiled, KV heads "
                f"{self.attention_sharding}); host memory {host_needed_gib:.0f} GiB for loading and compiling.")


def neuron_facts() -> dict[str, Any]:
    return engine_facts()["neuron"]


def kv_sharding(arch: Architecture, tp: int) -> tuple[str, int]:
    """(strategy, KV heads each core holds) as NxDI's gqa.determine_sharding_strategy decides."""
    if arch.mla:
        return "replicated", 1
    kv = arch.num_kv_heads
    if kv % tp == 0:
        return "sharded", kv // tp
    if tp % kv == 0:
        return "replicated", 1
    padded = math.ceil(arch.num_heads / tp) * tp  # attention heads padded to a multiple of TP, then MHA
    return "converted-to-mha", padded // tp


def neuron_unsupported(arch: Architecture, *, quantization: str | None = None, kv_cache_dtype: str = "auto",
                       gpu_memory_utilization: float | None = None) -> str | None:
    """Why this project cannot serve these settings on Neuron, or None. It rejects them rather than ignore them.

    vllm-neuron hands the model to NxD Inference, which compiles it from the 16-bit checkpoint: its quantization
    (NeuronConfig quantized / quantization_dtype, a separately saved quantized state dict) and its KV-cache dtype
    are NeuronConfig fields reached only through `override_neuron_config`, which the Ray Serve app does not set;
    vllm-neuron's platform declares only its own methods (supported_quantization = neuron_quant, fbgemm_fp8), so
    AWQ/GPTQ/compressed-tensors checkpoints and `--quantization fp8` do not apply. gpu_memory_utilization has no
    effect: the KV cache is allocated contiguously for max_num_seqs x max_model_len at compile time
    (vllm-project/vllm-neuron vllm_neuron/platform.py and worker/neuronx_distributed_model_loader.py, read
    2026-12-02).
    """
    if quantization not in (None, "none"):
        return (f"«quantization» {quantization} is not deployed on Neuron: NxD Inference quantizes through "
                "override_neuron_config, which this project does not set; leave «quantization» unset for Neuron")
    if arch.quant is not None:
        return (f"{arch.name or 'the model'} is a quantized checkpoint ({arch.quant.method}); vllm-neuron compiles "
                "16-bit checkpoints only: serve the 16-bit model on Neuron")
    if kv_cache_dtype not in (None, "auto"):
        return (f"«kv_cache_dtype» {kv_cache_dtype} is not deployed on Neuron: NxD Inference sets its KV-cache dtype "
                "through override_neuron_config, which this project does not set; leave «kv_cache_dtype» auto")
    if gpu_memory_utilization is not None:
        return ("«gpu_memory_utilization» has no effect on Neuron: vllm-neuron allocates the KV cache for "
                "concurrency x max model length when it compiles; leave it unset")
    return None


def check_neuron_tp(arch: Architecture, tp: int) -> None:
    if tp < 1:
        raise SizingError(f"«tensor_parallel_size» must be at least 1 (got {tp})", key="tensor_parallel_size")
    if arch.num_heads % tp:
        valid = [t for t in neuron_facts()["tensor_parallel_sizes"] if arch.num_heads % t == 0]
        raise SizingError(f"«tensor_parallel_size» {tp} does not divide the {arch.num_heads} attention heads; valid on "
                          f"Neuron: {', '.join(map(str, valid))}", key="tensor_parallel_size")


def neuron_budget(
    arch: Architecture,
    accel: Accelerator,
    *,
    tensor_parallel_size: int,
    max_model_len: int,
    max_num_seqs: int,
    dtype: str = "auto",
    quantization: str | None = None,
) -> NeuronBudget:
    if not accel.is_neuron:
        raise SizingError(f"{accel.name} is not a Neuron device")
    if max_model_len <= 0 or max_num_seqs <= 0:
        raise SizingError("max model length and max_num_seqs must be positive")
    tp = tensor_parallel_size
    check_neuron_tp(arch, tp)
    if dtype not in NEURON_DTYPES:
        raise SizingError(f"«dtype» '{dtype}' is not supported on Neuron; use one of {', '.join(NEURON_DTYPES)}", key="dtype")
    unsupported = neuron_unsupported(arch, quantization=quantization)
    if unsupported:
        raise SizingError(unsupported, key="quantization")
    if dtype == "auto":
        dtype = "bfloat16" if arch.torch_dtype == "float32" else arch.torch_dtype
    f = neuron_facts()
    fmt = resolve_format(arch, dtype, quantization)
    strategy, heads_per_core = kv_sharding(arch, tp)
    factor = 1 if arch.mla else 2
    kv_per_token = factor * arch.num_layers * heads_per_core * arch.head_dim * DTYPE_BYTES[dtype]
    kv = kv_per_token * max_num_seqs * max_model_len
    weights = weight_bytes(arch, fmt, tp)
    hbm = f["hbm_per_core_gib"]
    usable = hbm * (1 - f["runtime_reserve_fraction"])
    return NeuronBudget(
        accelerator=accel.key,
        vllm_version=f["vllm_version"],
        tensor_parallel_size=tp,
        devices=math.ceil(tp / accel.cores),
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        dtype=dtype,
        weight_format=fmt.label,
        parameters=arch.parameters,
        attention_sharding=strategy,
        kv_heads_per_core=heads_per_core,
        hbm_per_core_gib=hbm,
        usable_per_core_gib=usable,
        weights_per_core_gib=weights / GIB,
        kv_cache_per_core_gib=kv / GIB,
        kv_bytes_per_token=kv_per_token,
        kv_cache_tokens=max_num_seqs * max_model_len,
        max_concurrency=max_num_seqs,
        fits=(weights + kv) / GIB <= usable,
    )
