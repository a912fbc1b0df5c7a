"""vLLM's page and block formulas worked by hand, and the weight formats' bytes."""

from __future__ import annotations

import math

import pytest

from sizing.architecture import Shard, Tensor, Role, from_config
from sizing.catalog import GIB, accelerator, load_config_file, load_model_config
from sizing.kv_cache import CacheContext, Limits
from sizing.memory import gpu_budget, kv_cache_of
from sizing.rules_of_thumb import seed_estimates, seed_kv_bytes_per_token, true_kv_bytes_per_token
from sizing.weights import WeightFormat, resolve_format, tensor_bytes, weight_bytes

from .ground_truth import LOGS


def arch(model):
    return from_config(load_model_config(model)[0], model)


def test_qwen3_1_7b_kv_per_token_is_half_the_seed_figure():
    # Issue 2: 2 x 28 layers x 8 KV heads x 128 head_dim x 2 bytes = 114,688; seed: 2 x 2 x 28 x 2048 = 229,376.
    a = arch("Qwen/Qwen3-1.7B")
    assert true_kv_bytes_per_token(a, 2) == 114_688
    assert seed_kv_bytes_per_token(a, 2) == 229_376
    assert gpu_budget(a, accelerator("l4"), max_model_len=8192).kv_bytes_per_token == 114_688


def test_seed_001_formula_as_written():
    # Seed 001 for Qwen3-1.7B at 8192 x 1: 3.4 + 0.85 + 1.6 = 5.85 "GiB" with 1.7B and 0.2 MB per token;
    # with the exact 1,720,574,976 parameters and 229,376 B/token it is (3.441e9 x 1.25 + 1.879e9) B.
    a = arch("Qwen/Qwen3-1.7B")
    seed = {r.name: r for r in seed_estimates(a, 2, 8192, 1)}
    expected = (1_720_574_976 * 2 * 1.25 + 229_376 * 8192) / GIB
    assert seed["25% activations + KV"].total_gib == pytest.approx(expected)
    assert seed["20% overhead"].total_gib == pytest.approx(1_720_574_976 * 2 * 1.2 / GIB)


def kv(a, tp):
    """One rank's KV cache at a 16-bit KV dtype and vLLM's block size 16."""
    return kv_cache_of(a, CacheContext(tp, 2, 2, 16))


def test_gqa_pages_replicate_kv_heads_when_tp_exceeds_them():
    # Llama-3.1-70B: 8 KV heads. TP 16 -> max(1, 8 // 16) = 1 head per rank: page 2 x 16 x 1 x 128 x 2 = 8,192 B.
    a = arch("meta-llama/Llama-3.1-70B-Instruct")
    assert kv(a, 16).layers[0].page_bytes == 8_192
    assert kv(a, 4).layers[0].page_bytes == 2 * 16 * 2 * 128 * 2
    assert kv(a, 4).bytes_per_block == 80 * 2 * 16 * 2 * 128 * 2  # one group: a block id spans all 80 layers


def test_mla_page_has_no_factor_two():
    # DeepSeek-V2-Lite: kv_lora_rank 512 + qk_rope_head_dim 64 = 576; page 16 x 576 x 2 = 18,432 B; 27 layers.
    a = from_config(load_config_file(LOGS / "configs" / "deepseek-ai--DeepSeek-V2-Lite-Chat.json"))
    cache = kv(a, 1)
    assert cache.layers[0].page_bytes == 18_432
    assert cache.kv_bytes_per_token == 27 * 576 * 2
    assert kv(a, 8).layers[0].page_bytes == 18_432  # the latent is replicated across TP ranks


def test_gemma2_hybrid_groups_and_sliding_blocks():
    # 42 layers: 21 sliding (window 4096) + 21 full -> two groups of 21. At max_model_len 8192 with 8192
    # batched tokens a sliding layer needs cdiv(min(4096 - 1 + 8192, 8192), 16) + 1 = 513 blocks, a full one 512.
    a = arch("google/gemma-2-9b-it")
    cache = kv(a, 1)
    assert [len(g.specs) for g in cache.groups] == [21, 21]
    sliding, full = sorted(cache.groups, key=lambda g: g.specs[0].max_memory_usage_bytes(Limits(32768, 2048)))
    assert full.blocks_per_request(Limits(8192, 8192)) == 512
    assert sliding.blocks_per_request(Limits(8192, 8192)) == 513
    # A short request is bounded by its own length, a long one by the window.
    assert sliding.blocks_per_request(Limits(1024, 2048)) == 1024 // 16 + 1
    assert sliding.blocks_per_request(Limits(32768, 2048)) == math.ceil((4096 - 1 + 2048) / 16) + 1
    assert cache.blocks_per_request(Limits(8192, 8192)) == 512 + 513


def test_kv_tokens_are_whole_blocks_of_the_available_memory():
    # KV tokens = floor(kv_avail / (page x layers)) x 16 (kv_cache_utils.get_num_blocks).
    a = arch("meta-llama/Llama-3.1-8B")
    b = gpu_budget(a, accelerator("h100"), max_model_len=8192, gpu_memory_utilization=0.95)
    page_all_layers = 2 * 16 * 8 * 128 * 2 * 32
    assert b.num_blocks == math.floor(b.kv_cache_gib * GIB / page_all_layers)
    assert b.kv_cache_tokens == b.num_blocks * 16
    assert b.max_concurrency == pytest.approx(b.num_blocks / (8192 / 16))


def test_awq_linear_bytes_by_hand():
    # 4096 x 4096 at 4 bits, group 128: packed 8,388,608 + fp16 scales 32 x 4096 x 2 + packed zeros 32 x 4096 / 2.
    t = Tensor("q_proj", 4096, 4096, 1, Shard.COLUMN, Role.ATTENTION)
    assert tensor_bytes(t, WeightFormat("float16", "awq", 4, 128)) == 8_388_608 + 262_144 + 65_536
    # GPTQ adds an int32 group index per input row.
    assert tensor_bytes(t, WeightFormat("float16", "gptq", 4, 128)) == 8_388_608 + 262_144 + 65_536 + 4096 * 4
    # fp8 per-tensor: one byte per weight and one float32 scale.
    assert tensor_bytes(t, WeightFormat("bfloat16", "fp8-tensor", 8)) == 4096 * 4096 + 4


def test_runtime_fp8_keeps_embeddings_in_bf16():
    # vLLM --quantization fp8 on Llama-3.1-8B: embeddings + LM head (2 x 128256 x 4096) stay bf16.
    a = arch("meta-llama/Llama-3.1-8B")
    fp8 = weight_bytes(a, resolve_format(a, "bfloat16", "fp8"))
    embeddings = 2 * 128_256 * 4096
    linear = a.parameters - embeddings - (32 * 2 + 1) * 4096
    assert fp8 == pytest.approx(embeddings * 2 + linear * 1 + (32 * 2 + 1) * 4096 * 2, abs=32 * 7 * 4 + 1)


def test_vocab_is_padded_to_64_before_splitting():
    # Mistral v0.3's 32,768 tokens split evenly; a 32,001-token vocabulary pads to 32,064 rows first.
    t = Tensor("embed_tokens", 4096, 32_001, 1, Shard.VOCAB, Role.EMBEDDING)
    assert tensor_bytes(t, WeightFormat("bfloat16"), tp=2) == 4096 * 32_064 // 2 * 2


def _with_quant(model_config, quantization_config):
    return from_config({**model_config, "quantization_config": quantization_config})


def test_checkpoint_quantization_configs_match_the_logged_checkpoints():
    # vLLM 0.19 logged "Model loading took 5.38 GiB" for RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16 (4-bit,
    # group 128) and 8.14 GiB for RedHatAI/Qwen2.5-7B-Instruct-fp8-dynamic (tests/sizing/data/vllm_logs).
    llama = load_model_config("meta-llama/Llama-3.1-8B-Instruct")[0]
    for quant in ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"},
                  {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True},
                  {"quant_method": "compressed-tensors", "config_groups": {"group_0": {
                      "weights": {"num_bits": 4, "type": "int", "group_size": 128, "strategy": "group"}}}}):
        a = _with_quant(llama, quant)
        fmt = resolve_format(a, "float16")
        assert weight_bytes(a, fmt) / GIB == pytest.approx(5.38, rel=0.01), quant["quant_method"]
    qwen = load_config_file(LOGS / "configs" / "Qwen--Qwen2.5-7B-Instruct.json")
    fp8 = _with_quant(qwen, {"quant_method": "compressed-tensors", "config_groups": {"group_0": {
        "weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}}})
    assert weight_bytes(fp8, resolve_format(fp8, "bfloat16")) / GIB == pytest.approx(8.14, rel=0.01)


def test_block_fp8_checkpoints_keep_their_scales():
    # DeepSeek-R1 ships fp8 weights with one float32 scale per 128 x 128 block.
    a = arch("deepseek-ai/DeepSeek-R1-0528")
    fmt = resolve_format(a, "bfloat16")
    assert fmt.scheme == "fp8-block" and fmt.block == (128, 128)
    t = Tensor("w", 7168, 18432, 1, Shard.COLUMN, Role.MLP)
    assert tensor_bytes(t, fmt) == 7168 * 18432 + (18432 // 128) * (7168 // 128) * 4


def test_unsupported_quantization_is_a_clear_error():
    from sizing.errors import SizingError

    with pytest.raises(SizingError, match="bitsandbytes"):
        _with_quant(load_model_config("Qwen/Qwen3-1.7B")[0], {"quant_method": "bitsandbytes", "load_in_4bit": True})


def test_mxfp4_expert_bytes_by_hand():
    # 2880 x 2880 at 4 bits (1,440 bytes per row of 2880) plus one uint8 E8M0 scale per 32 inputs.
    fmt = WeightFormat("bfloat16", "mxfp4", 4, group_size=32)
    assert fmt.linear_bytes(2880, 2880) == 2880 * 2880 / 2 + 90 * 2880
