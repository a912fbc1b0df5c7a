"""vLLM's KV cache, layer by layer, as vllm/v1/kv_cache_interface.py and kv_cache_utils.py (v0.32.0) define it.

Each layer's cache is a spec that owns its page size (bytes of one block of `block_size` tokens) and how many
pages one request of max_model_len holds at most: all of them for full attention and MLA, the window for sliding
windows, the chunk for chunked local attention, a fixed state for Mamba-like layers. The engine then groups the
layers (one block table per group), unifies page sizes, divides the KV memory by the bytes of one block across a
group's layers, and reports tokens and concurrency from the block count.

An architecture describes its caches before tensor parallelism and dtype are known: one `LayerCache` per cache
that vLLM registers (a decoder layer sharing another layer's KV registers none; DeepSeek-V3.2's indexer registers
one more). `LayerCache.spec(ctx)` turns it into the spec of one rank. New cache kinds (Mamba or linear-attention
state, indexer caches) subclass `LayerCache` and `KVCacheSpec` in their own module.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class CacheContext:
    """What turns an architecture's caches into one rank's specs: the engine arguments that shape pages."""

    tensor_parallel_size: int
    kv_bytes: int  # bytes of one KV element (--kv-cache-dtype; auto: the model dtype)
    dtype_bytes: int  # bytes of the model dtype (Mamba state follows it)
    block_size: int
    mamba_cache_mode: str = "none"  # state pages a request holds: none 1, align 2, all one per block (state_cache.py)
    mamba2_checkpoint: bool = False  # Mamba2 layers hold one more state page in align mode (v0.32)
    mamba_ssm_bytes: int | None = None  # --mamba-ssm-cache-dtype as the model resolves it; None: the model dtype
    compute_capability: int | None = None  # of the GPU (89, 90, 100, 120): some caches follow the backend it gets


@dataclass(frozen=True)
class Limits:
    """What bounds one request's blocks: its length and the tokens scheduled but not yet freed."""

    max_model_len: int
    in_flight_tokens: int  # VllmConfig.max_in_flight_tokens: concurrent batches x max_num_batched_tokens


# --- specs (kv_cache_interface) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KVCacheSpec:
    """The cache of one layer on one rank."""

    block_size: int

    @property
    def page_bytes(self) -> int:
        raise NotImplementedError

    def max_memory_usage_bytes(self, limits: Limits) -> int:
        """The most one request can hold in this layer."""
        raise NotImplementedError

    def uniform_type(self) -> tuple:
        """Layers with equal keys need the same number of token slots (UniformTypeKVCacheSpecs): they can share
        one block table even when their page sizes differ."""
        return (type(self),)

    def scaled(self, factor: int) -> KVCacheSpec:
        """The same cache with `factor` times the tokens per block (unify_kv_cache_spec_page_size)."""
        return replace(self, block_size=self.block_size * factor)

    def padded(self, page_bytes: int) -> KVCacheSpec:
        """The same cache with its page padded to `page_bytes`."""
        raise ValueError(f"{type(self).__name__} pages cannot be padded")


@dataclass(frozen=True)
class AttentionSpec(KVCacheSpec):
    num_kv_heads: int
    head_size: int
    head_size_v: int
    dtype_bytes: int
    page_padded: int | None = None

    @property
    def page_bytes(self) -> int:
        page = self.block_size * self.num_kv_heads * (self.head_size + self.head_size_v) * self.dtype_bytes
        return self.page_padded or page

    def padded(self, page_bytes: int) -> KVCacheSpec:
        return replace(self, page_padded=page_bytes)


@dataclass(frozen=True)
class FullAttentionSpec(AttentionSpec):
    def max_memory_usage_bytes(self, limits: Limits) -> int:
        return cdiv(limits.max_model_len, self.block_size) * self.page_bytes


@dataclass(frozen=True)
class MLAAttentionSpec(FullAttentionSpec):
    """One latent of kv_lora_rank + rope dims per token (head_size_v 0), replicated on every rank."""

    def uniform_type(self) -> tuple:
        return (MLAAttentionSpec,)

    def padded(self, page_bytes: int) -> KVCacheSpec:
        raise ValueError("MLA pages cannot be padded to another layer's page size")


@dataclass(frozen=True)
class SlidingWindowSpec(AttentionSpec):
    sliding_window: int = 0

    def max_memory_usage_bytes(self, limits: Limits) -> int:
        # The last window - 1 computed tokens plus the in-flight ones; +1 as the window may start mid-block.
        tokens = min(self.sliding_window - 1 + limits.in_flight_tokens, limits.max_model_len)
        return (cdiv(tokens, self.block_size) + 1) * self.page_bytes

    def uniform_type(self) -> tuple:
        return (SlidingWindowSpec, self.sliding_window)


@dataclass(frozen=True)
class ChunkedLocalAttentionSpec(AttentionSpec):
    attention_chunk_size: int = 0

    def max_memory_usage_bytes(self, limits: Limits) -> int:
        tokens = min(self.attention_chunk_size + limits.in_flight_tokens, limits.max_model_len)
        return cdiv(tokens, self.block_size) * self.page_bytes

    def uniform_type(self) -> tuple:
        return (ChunkedLocalAttentionSpec, self.attention_chunk_size)


@dataclass(frozen=True)
class MambaSpec(KVCacheSpec):
    """A fixed-size recurrent state (conv + SSM / linear-attention state): one page per request, whatever its
    length. `state_bytes` is the sum over the state tensors of their elements x dtype bytes on one rank."""

    state_bytes: int
    page_padded: int | None = None
    speculative_blocks: int = 0

    @property
    def page_bytes(self) -> int:
        return self.page_padded or self.state_bytes

    def max_memory_usage_bytes(self, limits: Limits) -> int:
        return self.page_bytes * (1 + self.speculative_blocks)

    def uniform_type(self) -> tuple:
        return (MambaSpec, self.page_bytes, self.speculative_blocks)

    def scaled(self, factor: int) -> KVCacheSpec:
        return replace(self, block_size=self.block_size * factor)

    def padded(self, page_bytes: int) -> KVCacheSpec:
        return replace(self, page_padded=page_bytes)


# --- what an architecture declares ------------------------------------------------------------------------


class LayerCache:
    """One cache an architecture registers with vLLM, before tensor parallelism and dtype."""

    def spec(self, ctx: CacheContext) -> KVCacheSpec:
        raise NotImplementedError

    @property
    def window(self) -> int | None:
        """Tokens the cache keeps (sliding window or chunk); None when it grows with the request."""
        return None


@dataclass(frozen=True)
class Attention(LayerCache):
    """A softmax-attention layer's KV cache: full, sliding-window, chunked local, or MLA."""

    num_kv_heads: int
    head_size: int
    head_size_v: int | None = None  # None: the same as head_size
    sliding_window: int | None = None
    attention_chunk_size: int | None = None
    mla: bool = False  # one latent, no value head, not split across ranks

    def spec(self, ctx: CacheContext) -> KVCacheSpec:
        if self.mla:
            return MLAAttentionSpec(ctx.block_size, 1, self.head_size, 0, ctx.kv_bytes)
        heads = max(1, self.num_kv_heads // ctx.tensor_parallel_size)
        head_v = self.head_size if self.head_size_v is None else self.head_size_v
        common = (ctx.block_size, heads, self.head_size, head_v, ctx.kv_bytes)
        if self.sliding_window:
            return SlidingWindowSpec(*common, sliding_window=self.sliding_window)
        if self.attention_chunk_size:
            return ChunkedLocalAttentionSpec(*common, attention_chunk_size=self.attention_chunk_size)
        return FullAttentionSpec(*common)

    @property
    def window(self) -> int | None:
        return self.sliding_window or self.attention_chunk_size


# --- grouping and capacity (kv_cache_utils) ---------------------------------------------------------------


@dataclass(frozen=True)
class KVCacheGroup:
    """Layers that share one block table: the same block ids index each layer's own tensor."""

    specs: tuple[KVCacheSpec, ...]

    @property
    def page_bytes(self) -> int:
        return sum(s.page_bytes for s in self.specs)

    @property
    def block_size(self) -> int:
        return self.specs[0].block_size

    def blocks_per_request(self, limits: Limits) -> int:
        return max(cdiv(s.max_memory_usage_bytes(limits), s.page_bytes) for s in self.specs)


@dataclass(frozen=True)
class KVCacheConfig:
    """The KV cache of one rank: its groups and the bytes one block id costs across a group's layers."""

    layers: tuple[KVCacheSpec, ...]  # every layer's own spec, before page unification
    groups: tuple[KVCacheGroup, ...]

    @property
    def bytes_per_block(self) -> int:
        return max(g.page_bytes for g in self.groups)

    @property
    def kv_bytes_per_token(self) -> int:
        """What one more token costs: the pages of the layers that grow with the request (not Mamba state)."""
        return sum(s.page_bytes // s.block_size for s in self.layers if not isinstance(s, MambaSpec))

    def num_blocks(self, available: float) -> int:
        return int(available // self.bytes_per_block) if available > 0 else 0

    def blocks_per_request(self, limits: Limits) -> int:
        """Block ids one request of max_model_len takes from the shared pool, summed over groups."""
        return sum(g.blocks_per_request(limits) for g in self.groups)

    def max_concurrency(self, num_blocks: int, limits: Limits) -> float:
        """get_max_concurrency_for_kv_cache_config."""
        per_request = self.blocks_per_request(limits)
        return num_blocks / per_request if per_request else 0.0

    def tokens(self, num_blocks: int, limits: Limits, reported: str) -> int:
        """The "GPU KV cache size: N tokens" line: blocks per group x block size (reported "blocks"), or
        concurrency x max_model_len (reported "concurrency", the group-aware capacity of newer releases)."""
        if reported == "concurrency":
            return int(self.max_concurrency(num_blocks, limits) * limits.max_model_len)
        return num_blocks // len(self.groups) * min(g.block_size for g in self.groups)

    def needed_bytes(self, limits: Limits, check: str) -> int:
        """KV bytes one request of max_model_len needs at start-up: summed over layers ("layers",
        max_memory_usage_bytes), or block ids over groups x bytes per block ("groups", with group padding)."""
        if check == "groups":
            return self.blocks_per_request(limits) * self.bytes_per_block
        return sum(s.max_memory_usage_bytes(limits) for s in self.layers)


def kv_cache_config(specs: list[KVCacheSpec]) -> KVCacheConfig:
    """Group layers as get_kv_cache_groups does (hybrid KV cache manager on)."""
    if not specs:
        raise ValueError("a model without KV cache layers has no KV cache config")
    layers = tuple(specs)
    if len(set(specs)) == 1 or len({s.uniform_type() for s in specs}) == 1 and len({s.block_size for s in specs}) == 1:
        # One spec for all layers, or one type with different page sizes (UniformTypeKVCacheSpecs): one group.
        return KVCacheConfig(layers, (KVCacheGroup(layers),))
    unified = _unify_page_size(specs)
    # Bucket layers by type, then cut buckets into groups of equal layer count (the n:1 pattern's "1", or the
    # largest bucket when buckets are within 1.5x of each other), taking every num_groups-th layer.
    buckets: dict[tuple, list[KVCacheSpec]] = {}
    for spec in unified:
        buckets.setdefault((spec.uniform_type(), spec.block_size), []).append(spec)
    sizes = [len(b) for b in buckets.values()]
    group_size = max(sizes) if max(sizes) < 1.5 * min(sizes) else min(sizes)
    groups = []
    for bucket in buckets.values():
        n = cdiv(len(bucket), group_size)
        groups += [KVCacheGroup(tuple(bucket[i::n])) for i in range(n)]
    return KVCacheConfig(layers, tuple(groups))


def _unify_page_size(specs: list[KVCacheSpec]) -> list[KVCacheSpec]:
    """unify_kv_cache_spec_page_size: smaller pages take more tokens per block when the largest page is a
    multiple of theirs; otherwise non-MLA attention and Mamba pages are padded to the largest."""
    largest = max(s.page_bytes for s in specs)
    out = []
    for spec in specs:
        if spec.page_bytes == largest:
            out.append(spec)
        elif isinstance(spec, MambaSpec) or largest % spec.page_bytes:
            out.append(spec.padded(largest))
        else:
            out.append(spec.scaled(largest // spec.page_bytes))
    return out
