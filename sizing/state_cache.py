"""Caches that are not a softmax layer's keys and values: the fixed-size state of Mamba2 and Gated DeltaNet layers
(hybrid models), and DeepSeek-V3.2's sparse MLA and indexer keys. After vLLM 0.19-0.32 (facts: data/hybrid.yaml).

A state layer keeps, per request, a convolution window and a recurrent state whose size does not grow with the
request (`MambaStateShapeCalculator` in vllm/model_executor/layers/mamba/mamba_utils.py). vLLM pages it like
attention, one state per page, in the same block pool: `Platform._align_hybrid_block_size` raises the attention
block size until one attention page holds a state page (a multiple of the kernel block, 16), then pads the state
page to the attention page, so both kinds share one page size and one pool. How many state pages one request
holds follows the mamba cache mode: one ("none", no prefix caching), two ("align"), one per block ("all").
Every decoding sequence needs its own state page, so the block count also caps max_num_seqs (`state_blocks_cap`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from .errors import SizingError
from .kv_cache import Attention, CacheContext, LayerCache, MambaSpec, MLAAttentionSpec, cdiv

FLOAT32 = 4


@functools.cache
def hybrid_facts() -> dict:
    return yaml.safe_load((Path(__file__).parent / "data" / "hybrid.yaml").read_text(encoding="utf-8"))


def _line(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in str(version).lstrip("v").split(".")[:2])


def _since(version: str, key: str) -> bool:
    """Whether the release line of `version` is at or after the one a hybrid.yaml fact holds from."""
    return _line(version) >= _line(hybrid_facts()[key])


# --- specs ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateSpec(MambaSpec):
    """MambaSpec with the cache mode that decides how many state pages one request holds."""

    mode: str = "none"
    checkpoint_blocks: int = 0  # MambaMixer2's prefill checkpoint (v0.32, align mode)

    def max_memory_usage_bytes(self, limits) -> int:
        if self.mode == "all":
            return (cdiv(limits.max_model_len, self.block_size) + self.speculative_blocks) * self.page_bytes
        if self.mode == "align":
            return self.page_bytes * (2 + self.speculative_blocks + self.checkpoint_blocks)
        return self.page_bytes * (1 + self.speculative_blocks)

    def uniform_type(self) -> tuple:
        return (StateSpec, self.page_bytes, self.mode, self.checkpoint_blocks, self.speculative_blocks)


class IndexerSpec(MLAAttentionSpec):
    """DeepSeek-V3.2's indexer keys: an MLAAttentionSpec (cache role "indexer") of one fp8 vector and its scales;
    it groups with the MLA layers (one UniformTypeKVCacheSpecs group), its page added to theirs."""


# --- what an architecture declares ----------------------------------------------------------------------------


def _divide(n: int, t: int, what: str) -> int:
    if n % t:
        raise SizingError(f"«tensor_parallel_size» {t} does not divide the {n} {what}", key="tensor_parallel_size")
    return n // t


class StateCache(LayerCache):
    """A layer whose cache is a fixed-size state (MambaBase)."""

    ssm_bytes: int | None  # the recurrent state's dtype bytes when config.json sets one (mamba_ssm_cache_dtype)
    ssm_default: str | None  # hybrid.yaml key of the release from which the model's default is float32 (else 16-bit)

    def ssm(self, ctx: CacheContext) -> int:
        return self.ssm_bytes or ctx.mamba_ssm_bytes or ctx.dtype_bytes

    def state_bytes(self, ctx: CacheContext) -> int:
        raise NotImplementedError

    def checkpoint_blocks(self, ctx: CacheContext) -> int:
        return 0

    def spec(self, ctx: CacheContext) -> StateSpec:
        return StateSpec(ctx.block_size, self.state_bytes(ctx), mode=ctx.mamba_cache_mode,
                         checkpoint_blocks=self.checkpoint_blocks(ctx))


@dataclass(frozen=True)
class Mamba2State(StateCache):
    """MambaMixer2 (nemotron_h, granitemoehybrid): conv state (kernel - 1) x (intermediate + 2 x groups x state) / t,
    SSM state (heads / t) x head_dim x state. Groups that TP does not divide are replicated up to t."""

    intermediate_size: int
    n_groups: int
    num_heads: int
    head_dim: int
    state_size: int
    conv_kernel: int
    ssm_bytes: int | None = None
    ssm_default: str | None = None
    chunk_size: int = 256  # the SSD kernel's chunk ("all" mode aligns blocks to it)

    def state_bytes(self, ctx: CacheContext) -> int:
        t = ctx.tensor_parallel_size
        groups = self.n_groups if self.n_groups % t == 0 else t  # extra_groups_for_head_shards
        conv_dim = _divide(self.intermediate_size + 2 * groups * self.state_size, t, "Mamba conv channels")
        heads = _divide(self.num_heads, t, "Mamba heads")
        conv = (self.conv_kernel - 1) * conv_dim * ctx.dtype_bytes
        ssm = heads * self.head_dim * self.state_size * self.ssm(ctx)
        return conv + ssm

    def checkpoint_blocks(self, ctx: CacheContext) -> int:
        return int(ctx.mamba2_checkpoint and ctx.mamba_cache_mode == "align")


@dataclass(frozen=True)
class GatedDeltaNetState(StateCache):
    """Gated DeltaNet linear attention (qwen3_next, qwen3_5): conv state (kernel - 1) x (2 x key heads x key dim +
    value heads x value dim) / t, recurrent state (value heads / t) x value dim x key dim."""

    num_k_heads: int
    num_v_heads: int
    head_k_dim: int
    head_v_dim: int
    conv_kernel: int
    ssm_bytes: int | None = None
    ssm_default: str | None = None

    def state_bytes(self, ctx: CacheContext) -> int:
        t = ctx.tensor_parallel_size
        conv_dim = 2 * self.num_k_heads * self.head_k_dim + self.num_v_heads * self.head_v_dim
        conv = (self.conv_kernel - 1) * _divide(conv_dim, t, "linear-attention conv channels") * ctx.dtype_bytes
        heads = _divide(self.num_v_heads, t, "linear-attention value heads")
        return conv + heads * self.head_v_dim * self.head_k_dim * self.ssm(ctx)


FP8_DS_MLA_BYTES = 656  # FlashMLA sparse "fp8_ds_mla": 512 fp8 NoPE values, 4 fp32 scales, 64 bf16 RoPE values
INDEXER_QUANT_BLOCK = 128  # fp8 keys with one fp32 scale per 128 values


@dataclass(frozen=True)
class SparseMLA(LayerCache):
    """DeepSeek-V3.2's MLA cache, as the sparse MLA backend vLLM picks stores it (platforms/cuda.py priorities):
    Hopper's FlashMLA sparse serves a quantized --kv-cache-dtype (fp8) as fp8_ds_mla, 656 bytes per token;
    Blackwell's FlashInfer sparse keeps plain fp8 (576); the RTX PRO 6000's (SM120) backend takes only fp8_ds_mla,
    even for auto; otherwise kv_lora_rank + rope dims in the model dtype."""

    head_size: int  # kv_lora_rank + qk_rope_head_dim

    def spec(self, ctx: CacheContext) -> MLAAttentionSpec:
        cc = ctx.compute_capability or 90
        if cc >= 120 or (ctx.kv_bytes == 1 and cc < 100):
            return MLAAttentionSpec(ctx.block_size, 1, FP8_DS_MLA_BYTES, 0, 1)
        return Attention(1, self.head_size, mla=True).spec(ctx)  # type: ignore[return-value]


@dataclass(frozen=True)
class IndexerKeys(LayerCache):
    """DeepSeekV32IndexerCache: per token, index_head_dim fp8 values and a 4-byte scale per 128 of them."""

    index_head_dim: int

    def spec(self, ctx: CacheContext) -> IndexerSpec:
        size = self.index_head_dim + self.index_head_dim // INDEXER_QUANT_BLOCK * 4
        return IndexerSpec(ctx.block_size, 1, size, 0, 1)


INDEXER_BLOCK_SIZE = 64  # DeepseekV32IndexerBackend and FlashMLA sparse take 64-token blocks only


# --- how the engine sets block size and cache mode ------------------------------------------------------------


def is_hybrid(caches: tuple[LayerCache, ...]) -> bool:
    return any(isinstance(c, StateCache) for c in caches)


def mamba_cache_mode(caches: tuple[LayerCache, ...], version: str, prefix_caching: bool | None = None) -> str:
    """MambaModelConfig.verify_and_update_config: prefix caching (the release's default unless given) turns the
    state cache mode from none to align, or to all for Mamba2 models up to 0.27."""
    if not is_hybrid(caches):
        return "none"
    if prefix_caching is None:
        prefix_caching = _since(version, "prefix_caching_default_since")
    if not prefix_caching:
        return "none"
    supports_all = all(isinstance(c, Mamba2State) for c in caches if isinstance(c, StateCache))
    return "all" if supports_all and _line(version) <= _line(hybrid_facts()["all_mode_until"]) else "align"


def cache_context(caches: tuple[LayerCache, ...], ctx: CacheContext, version: str,
                  prefix_caching: bool | None = None) -> CacheContext:
    """The context vLLM builds the specs in: the cache mode, and the block size the platform settles on (64 for
    DeepSeek-V3.2's indexer; for hybrids the smallest multiple of the kernel block whose attention page holds a
    state page, of the SSD chunk in "all" mode)."""
    if any(isinstance(c, IndexerKeys) for c in caches):
        ctx = replace(ctx, block_size=math.lcm(ctx.block_size, INDEXER_BLOCK_SIZE))
    if not is_hybrid(caches):
        return ctx
    mode = mamba_cache_mode(caches, version, prefix_caching)
    ctx = replace(ctx, mamba_cache_mode=mode, mamba2_checkpoint=_since(version, "mamba2_checkpoint_since"))
    defaults = {c.ssm_default for c in caches if isinstance(c, StateCache) and c.ssm_default}
    if defaults:  # the model's own default when config.json names no SSM dtype (NemotronH: float16, then float32)
        ctx = replace(ctx, mamba_ssm_bytes=FLOAT32 if _since(version, defaults.pop()) else 2)
    attention = [c for c in caches if not isinstance(c, StateCache)]
    if not attention:
        return ctx
    per_token = attention[0].spec(replace(ctx, block_size=1)).page_bytes
    state = max(c.spec(ctx).state_bytes for c in caches if isinstance(c, StateCache))
    align = max(hybrid_facts()["kernel_block_alignment"], ctx.block_size)
    if mode == "all":
        chunk = math.lcm(min(c.chunk_size for c in caches if isinstance(c, Mamba2State)), align)
        block = chunk * cdiv(cdiv(state, per_token), chunk)
    else:
        block = align * cdiv(state, align * per_token)
    return replace(ctx, block_size=max(ctx.block_size, block))


def state_blocks_cap(caches: tuple[LayerCache, ...], version: str) -> bool:
    """Whether max_num_seqs above the block count stops the engine (True) or only caps CUDA graphs (0.19)."""
    return is_hybrid(caches) and _since(version, "max_num_seqs_over_blocks_fails_since")
