"""Bytes of a model's weights in a given format, in total and per tensor-parallel rank.

Quantized formats keep their real bytes: packed low-bit weights plus the scales and zero points the
checkpoint stores beside them. Embeddings, the LM head, norms and routers stay in the model dtype, as in
AWQ, GPTQ and fp8 checkpoints and in vLLM's runtime fp8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .architecture import Architecture, Role, Shard, Tensor
from .errors import SizingError
from .settings import QUANTIZATIONS

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
VOCAB_PADDING = 64  # vLLM DEFAULT_VOCAB_PADDING_SIZE: embeddings and LM head are padded to a multiple of this


@dataclass(frozen=True)
class WeightFormat:
    """How the linear layers are stored; everything else is in `dtype`."""

    dtype: str  # bfloat16 | float16 | float32
    scheme: str = "none"  # none | awq | gptq | fp8-tensor | fp8-channel | fp8-block | int8-channel
    bits: int = 16
    group_size: int | None = None
    block: tuple[int, int] | None = None
    # mxfp4 experts: (hidden, intermediate) alignment of vLLM's MoE kernel, which pads the expert weights
    # (fused_moe/oracle/mxfp4.py mxfp4_round_up_hidden_size_and_intermediate_size).
    expert_align: tuple[int, int] = (1, 1)

    def quantizes(self, t: Tensor) -> bool:
        """Whether this format stores `t` in its low-bit form (mxfp4: the routed experts only)."""
        if self.scheme == "mxfp4":
            return t.role is Role.EXPERTS
        return t.is_linear

    @property
    def label(self) -> str:
        if self.scheme == "none":
            return self.dtype
        if self.scheme in ("awq", "gptq"):
            return f"int{self.bits} ({self.scheme}, group {self.group_size or 'per-channel'})"
        return {"mxfp4": "mxfp4 (experts)", "fp8-tensor": "fp8", "fp8-channel": "fp8 (per-channel)", "fp8-block": "fp8 (block)",
                "int8-channel": "int8 (w8a8)"}[self.scheme]

    def linear_bytes(self, in_f: int, out_f: int) -> float:
        if self.scheme == "none":
            return in_f * out_f * DTYPE_BYTES[self.dtype]
        packed = in_f * out_f * self.bits / 8
        if self.scheme in ("awq", "gptq"):
            groups = math.ceil(in_f / self.group_size) if self.group_size else 1
            scales = groups * out_f * 2  # fp16 scales
            zeros = groups * out_f * self.bits / 8  # packed zero points
            g_idx = in_f * 4 if self.scheme == "gptq" else 0  # int32 group index per input row
            return packed + scales + zeros + g_idx
        if self.scheme == "fp8-tensor":
            return packed + 4
        if self.scheme == "mxfp4":  # uint8 pairs of 4-bit values, one uint8 (E8M0) scale per 32 along the input
            return packed + math.ceil(in_f / 32) * out_f
        if self.scheme in ("fp8-channel", "int8-channel"):
            return packed + out_f * 4
        if self.scheme == "fp8-block":
            b_out, b_in = self.block or (128, 128)
            return packed + math.ceil(out_f / b_out) * math.ceil(in_f / b_in) * 4
        raise AssertionError(self.scheme)


def checkpoint_format(q) -> str:
    """What a checkpoint's quantization_config holds, in the words of the quantization setting: fp8, int8, int4."""
    if q.method in ("fp8", "compressed-tensors-fp8"):
        return "fp8"
    if q.method == "mxfp4":
        return "mxfp4"
    return f"int{q.bits}"


def resolve_format(arch: Architecture, dtype: str, quantization: str | None = None) -> WeightFormat:
    """The weight format vLLM loads: what the checkpoint really is (its config.json quantization_config), or, for a
    16-bit checkpoint and quantization fp8, vLLM's on-the-fly fp8.

    `quantization` states the weight format wanted. A quantized checkpoint is served as it is: asking for its own
    format is fine, asking for another is an error (vLLM refuses a --quantization that differs from the
    checkpoint's). A 16-bit checkpoint can only be quantized on the fly to fp8 (see `vllm_quantization`).
    """
    if dtype not in DTYPE_BYTES:
        raise SizingError(f"dtype '{dtype}' is not one of {', '.join(DTYPE_BYTES)}", key="dtype")
    if quantization == "none":
        quantization = None
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise SizingError(f"«quantization» '{quantization}' is not one of {', '.join(QUANTIZATIONS)}", key="quantization")
    q = arch.quant
    if q is not None:
        have = checkpoint_format(q)
        if quantization is not None and quantization != have:
            raise SizingError(
                f"«quantization» {quantization}: {arch.name or 'the model'} is already a {have} checkpoint ({q.method}); "
                f"vLLM serves it as it is and cannot re-quantize it; leave «quantization» unset or set it to {have}",
                key="quantization")
        if q.method in ("awq", "gptq", "compressed-tensors-int4"):
            scheme = "gptq" if q.method == "gptq" else "awq"
            return WeightFormat(dtype if dtype != "float32" else "float16", scheme, q.bits, q.group_size)
        if q.method == "fp8":
            return WeightFormat(dtype, "fp8-block" if q.block else "fp8-tensor", 8, block=q.block)
        if q.method == "compressed-tensors-fp8":
            return WeightFormat(dtype, "fp8-channel", 8)
        if q.method == "compressed-tensors-int8":
            return WeightFormat(dtype, "int8-channel", 8)
        if q.method == "mxfp4":
            return WeightFormat(dtype, "mxfp4", 4, group_size=32)
        raise SizingError(f"quantization {q.method} is not supported")
    if quantization is None:
        return WeightFormat(dtype)
    if quantization == "fp8":  # vLLM --quantization fp8: dynamic per-tensor fp8 of a 16-bit checkpoint
        return WeightFormat(dtype, "fp8-tensor", 8)
    raise SizingError(
        f"«quantization» {quantization}: {arch.name or 'the model'} is a {arch.torch_dtype} checkpoint and vLLM cannot "
        f"quantize it to {quantization} on the fly (its only on-the-fly weight format here is fp8); set «quantization» "
        f"fp8, or serve a checkpoint already quantized to {quantization} (AWQ, GPTQ or compressed-tensors)",
        key="quantization")


def vllm_quantization(arch: Architecture, quantization: str | None, compute_capability: int | None,
                      facts: dict) -> str | None:
    """The `--quantization` value to pass to vLLM, or None.

    A quantized checkpoint needs none: vLLM reads its config.json quantization_config and picks the kernel itself
    (awq -> awq_marlin, gptq -> gptq_marlin, ...); a differing flag is an error there. A 16-bit checkpoint with
    quantization fp8 gets `--quantization fp8`, vLLM's on-the-fly fp8, on GPUs of compute capability
    >= `facts["on_the_fly"]["fp8"]["min_capability"]` (native fp8 from `native_min_capability`, else the Marlin
    weight-only kernel). `facts` is engine.yaml's `quantization` entry for the vLLM line.
    """
    if quantization is None or quantization == "none" or arch.quant is not None:
        return None
    rule = facts["on_the_fly"][quantization]
    if compute_capability is not None and compute_capability < rule["min_capability"]:
        cc = f"{compute_capability // 10}.{compute_capability % 10}"
        need = f"{rule['min_capability'] // 10}.{rule['min_capability'] % 10}"
        raise SizingError(f"«quantization» {quantization} on the fly needs compute capability >= {need}; this GPU has {cc}",
                          key="quantization")
    assert rule["vllm_method"] in facts["methods"]
    return rule["vllm_method"]


def _shard(t: Tensor, tp: int) -> tuple[int, int]:
    """(in_features, out_features) of the slice one rank holds."""
    if t.shard is Shard.VOCAB:
        padded = math.ceil(t.out_features / VOCAB_PADDING) * VOCAB_PADDING
        return t.in_features, math.ceil(padded / tp)
    if t.shard is Shard.COLUMN:
        return t.in_features, math.ceil(t.out_features / tp)
    if t.shard is Shard.ROW:
        return math.ceil(t.in_features / tp), t.out_features
    if t.shard is Shard.KV:
        per_head = t.out_features // t.kv_heads
        return t.in_features, max(1, t.kv_heads // tp) * per_head
    return t.in_features, t.out_features


def tensor_bytes(t: Tensor, fmt: WeightFormat, tp: int = 1) -> float:
    in_f, out_f = _shard(t, tp)
    if t.role is Role.EXPERTS and fmt.expert_align != (1, 1):
        # gate/up map hidden -> intermediate, down maps intermediate -> hidden
        h_step, i_step = fmt.expert_align
        in_step, out_step = (i_step, h_step) if t.name.endswith("down_proj") else (h_step, i_step)
        in_f, out_f = _round_up(in_f, in_step), _round_up(out_f, out_step)
    if fmt.quantizes(t):
        return fmt.linear_bytes(in_f, out_f) * t.count
    return in_f * out_f * DTYPE_BYTES[fmt.dtype] * t.count


def _round_up(dim: int, step: int) -> int:
    return math.ceil(dim / step) * step


def weight_bytes(arch: Architecture, fmt: WeightFormat, tp: int = 1) -> float:
    """Bytes of all weights on one of `tp` ranks (tp=1: the whole model)."""
    return sum(tensor_bytes(t, fmt, tp) for t in arch.tensors)


# Bytes per element of the safetensors dtypes (huggingface_hub parameter_count keys).
SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
                     "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
FLOAT_DTYPES = ("F64", "F32", "BF16", "F16")


def checkpoint_bytes(parameters: dict[str, int], dtype: str) -> float:
    """Bytes of a checkpoint given its safetensors parameter counts per dtype: floating-point tensors are cast to
    the served dtype (vLLM loads them in --dtype); packed, quantized and scale tensors keep their own size."""
    unknown = sorted(set(parameters) - set(SAFETENSORS_BYTES))
    if unknown:
        raise SizingError(f"safetensors dtype {unknown[0]} is not one of {', '.join(SAFETENSORS_BYTES)}")
    return sum(n * (DTYPE_BYTES[dtype] if k in FLOAT_DTYPES else SAFETENSORS_BYTES[k]) for k, n in parameters.items())


def served_weight_bytes(arch: Architecture, fmt: WeightFormat, tp: int = 1) -> float:
    """Weight bytes on one of `tp` ranks. With the checkpoint's safetensors counts (a Hub model), their bytes
    are the total and the architecture only says how the ranks split them; otherwise the architecture's own.
    A format quantized on the fly keeps the architecture's bytes (the checkpoint is not what is served)."""
    derived = weight_bytes(arch, fmt, tp)
    counts = arch.extras.get("safetensors_parameters")
    if not counts or (arch.quant is None and fmt.scheme != "none"):
        return derived
    unpadded = weight_bytes(arch, replace(fmt, expert_align=(1, 1)), 1)
    padding = derived - weight_bytes(arch, replace(fmt, expert_align=(1, 1)), tp)
    return (derived - padding) * checkpoint_bytes(counts, fmt.dtype) / unpadded + padding


def mxfp4_expert_align(compute_capability: int | None, facts: dict) -> tuple[int, int]:
    """(hidden, intermediate) alignment of the MXFP4 MoE kernel vLLM picks (engine.yaml mxfp4_expert_align):
    Hopper has its own kernel; Blackwell's TRT-LLM and the Marlin kernel below Hopper pad alike."""
    hopper = compute_capability is not None and 90 <= compute_capability < 100
    return tuple(facts["hopper" if hopper else "other"])


def rotary_cache_bytes(arch: Architecture, fmt: WeightFormat) -> int:
    """vLLM's rotary cos/sin caches (get_rope keeps one per distinct rope), loaded with the weights: positions x
    rotary dims in the model dtype. Linear scaling stretches the cache by its factor; Gemma 3's sliding layers
    use a second rope (rope_local_base_freq) without scaling."""
    positions = arch.extras.get("rope_cache_positions") or [arch.max_position_embeddings]
    return sum(positions) * arch.rotary_dim * DTYPE_BYTES[fmt.dtype]
