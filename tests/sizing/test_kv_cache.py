"""KV cache specs and grouping, against vLLM v0.32.0's kv_cache_interface.py and kv_cache_utils.py worked by hand."""

from __future__ import annotations

import pytest

from sizing.kv_cache import (
    Attention,
    CacheContext,
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    Limits,
    MambaSpec,
    SlidingWindowSpec,
    kv_cache_config,
)

CTX = CacheContext(tensor_parallel_size=1, kv_bytes=2, dtype_bytes=2, block_size=16)


def test_page_is_heads_times_key_and_value_sizes():
    # AttentionSpec.page_size_bytes = num_heads x block_size x (head_size + head_size_v) x dtype bytes.
    assert FullAttentionSpec(16, 8, 128, 128, 2).page_bytes == 8 * 16 * 256 * 2
    # MLA: one latent (head_size_v 0) of kv_lora_rank 512 + rope 64, one head whatever the TP degree.
    mla = Attention(1, 576, mla=True)
    assert mla.spec(CacheContext(8, 2, 2, 16)).page_bytes == 16 * 576 * 2


def test_kv_heads_split_then_replicate_across_ranks():
    layer = Attention(8, 128)
    assert layer.spec(CacheContext(4, 2, 2, 16)).num_kv_heads == 2
    assert layer.spec(CacheContext(16, 2, 2, 16)).num_kv_heads == 1


def test_blocks_one_request_holds_per_kind():
    limits = Limits(max_model_len=32768, in_flight_tokens=8192)
    full = FullAttentionSpec(16, 8, 64, 64, 2)
    assert full.max_memory_usage_bytes(limits) == 2048 * full.page_bytes
    # gpt-oss sliding window 128: cdiv(min(128 - 1 + 8192, 32768), 16) + 1 = 521 blocks.
    sliding = SlidingWindowSpec(16, 8, 64, 64, 2, sliding_window=128)
    assert sliding.max_memory_usage_bytes(limits) == 521 * sliding.page_bytes
    # Llama 4 chunk 8192: cdiv(min(8192 + 8192, 32768), 16) = 1024 blocks, no +1 (chunks start on a boundary).
    chunked = ChunkedLocalAttentionSpec(16, 8, 128, 128, 2, attention_chunk_size=8192)
    assert chunked.max_memory_usage_bytes(limits) == 1024 * chunked.page_bytes
    # A Mamba state: one page whatever the length.
    assert MambaSpec(16, state_bytes=1_000_000).max_memory_usage_bytes(limits) == 1_000_000


def test_llama4_pattern_groups_three_local_to_one_full():
    # 48 layers, every 4th global: 36 chunked + 12 full -> group size 12 (36 > 1.5 x 12), 3 chunked groups + 1 full.
    layers = [Attention(8, 128) if (i + 1) % 4 == 0 else Attention(8, 128, attention_chunk_size=8192) for i in range(48)]
    cache = kv_cache_config([c.spec(CTX) for c in layers])
    assert sorted(len(g.specs) for g in cache.groups) == [12, 12, 12, 12]
    page = 16 * 8 * 256 * 2
    assert cache.bytes_per_block == 12 * page
    limits = Limits(32768, 8192)
    assert cache.blocks_per_request(limits) == 2048 + 3 * 1024
    # Reported tokens: blocks per group x block size (0.19), or concurrency x max_model_len (group-aware).
    assert cache.tokens(4000, limits, "blocks") == 1000 * 16
    assert cache.tokens(5120, limits, "concurrency") == 32768


def test_near_equal_buckets_take_the_larger_group_size():
    # kv_cache_utils: 12 sliding + 13 full (gpt-oss-20b + eagle) pads to two groups of 13, not 12 + 24.
    specs = [SlidingWindowSpec(16, 8, 64, 64, 2, sliding_window=128)] * 12 + [FullAttentionSpec(16, 8, 64, 64, 2)] * 13
    cache = kv_cache_config(specs)
    assert sorted(len(g.specs) for g in cache.groups) == [12, 13]
    assert cache.bytes_per_block == 13 * specs[0].page_bytes


def test_smaller_pages_take_more_tokens_per_block_or_padding():
    # unify_kv_cache_spec_page_size: a page that divides the largest scales its block size; a Mamba page pads.
    small, large = SlidingWindowSpec(16, 4, 128, 128, 2, sliding_window=1024), FullAttentionSpec(16, 8, 128, 128, 2)
    cache = kv_cache_config([small, large, small, large])
    assert {g.block_size for g in cache.groups} == {16, 32}
    assert {g.specs[0].page_bytes for g in cache.groups} == {large.page_bytes}
    state = MambaSpec(16, state_bytes=large.page_bytes - 100)
    cache = kv_cache_config([state, state, state, large])
    assert {s.page_bytes for g in cache.groups for s in g.specs} == {large.page_bytes}


def test_one_type_with_different_pages_is_one_group():
    # UniformTypeKVCacheSpecs: full attention layers of different head sizes share one block table;
    # a block id then costs the sum of their pages.
    a, b = FullAttentionSpec(16, 8, 256, 256, 2), FullAttentionSpec(16, 2, 512, 512, 2)
    cache = kv_cache_config([a, b, a, b])
    assert len(cache.groups) == 1
    assert cache.bytes_per_block == 2 * (a.page_bytes + b.page_bytes)


def test_gemma3_budget_follows_each_release_accounting():
    # Gemma-3-27B on H100 at 32768 tokens, 8192 batched tokens: 10 full layers (one group), 52 sliding (window
    # 1024) in 6 groups of 10. vLLM 0.19: a sliding layer holds cdiv(1023 + 8192, 16) + 1 = 577 blocks, tokens are
    # num_blocks // 7 x 16. vLLM 0.32: two batches in flight, cdiv(1023 + 16384, 16) + 1 = 1089 blocks, tokens are
    # int(concurrency x 32768), and the start-up check holds back one block.
    from sizing.architecture import from_config
    from sizing.catalog import accelerator, load_model_config
    from sizing.memory import gpu_budget

    arch = from_config(load_model_config("google/gemma-3-27b-it")[0])
    old = gpu_budget(arch, accelerator("h100"), max_model_len=32768, vllm_version="0.19.1")
    new = gpu_budget(arch, accelerator("h100"), max_model_len=32768, vllm_version="0.32.0")
    assert old.max_concurrency == pytest.approx(old.num_blocks / (2048 + 6 * 577))
    assert old.kv_cache_tokens == old.num_blocks // 7 * 16
    assert new.max_concurrency == pytest.approx(new.num_blocks / (2048 + 6 * 1089))
    assert new.kv_cache_tokens == int(new.num_blocks / (2048 + 6 * 1089) * 32768)


def test_gemma4_31b_reservation_equals_an_independent_trace():
    # Gemma-4-31B at TP 1: sliding layers 16 KV heads x 256, full layers 4 KV heads x 512 (K = V, both stored), so
    # the full page is half the sliding one and takes 32 tokens a block; 50 sliding + 10 full layers make 6 groups
    # of 10. An independent trace of vLLM's reservation (code-index id 70155876630, "match the traced
    # reservation") gives 13,637 blocks of 2,621,440 bytes per 262,144-token sequence with 16,384 tokens in flight
    # (H100: 8192 batched tokens, two batches) and 9,797 with 4,096 (A100).
    from sizing.architecture import from_config
    from sizing.catalog import load_model_config
    from sizing.memory import kv_cache_of

    cache = kv_cache_of(from_config(load_model_config("google/gemma-4-31B-it")[0]), CTX)
    assert len(cache.layers) == 60 and len(cache.groups) == 6
    assert cache.bytes_per_block == 2_621_440
    assert cache.blocks_per_request(Limits(262_144, 16_384)) == 13_637
    assert cache.blocks_per_request(Limits(262_144, 4_096)) == 9_797
