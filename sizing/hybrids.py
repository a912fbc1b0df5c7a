"""Hybrid families: attention layers interleaved with fixed-state layers, and DeepSeek-V3.2's sparse attention.

Weights follow the transformers classes (meta-device counts in tests/sizing/data), caches vLLM's model code at
v0.32.0 (vllm/model_executor/models/{qwen3_next,qwen3_5,granitemoehybrid,nemotron_h,deepseek_v2}.py):

- qwen3_next, qwen3_5, qwen3_5_moe: Gated DeltaNet linear attention with a full (gated) attention layer every
  `full_attention_interval` layers; Qwen 3.5 nests the text model in `text_config` beside a vision tower.
- granitemoehybrid (Granite 4.0-H): Mamba2 and attention layers (`layer_types`), each with a MoE and/or shared MLP.
- nemotron_h (Nemotron-H, Nemotron Nano 2, Nemotron 3): one mixer per layer from `hybrid_override_pattern`:
  M Mamba2, * attention, - MLP (squared ReLU, no gate), E mixture of experts.
- deepseek_v32: DeepSeek-V3's MLA and MoE plus the lightning indexer, whose fp8 keys are a second cache per layer.
"""

from __future__ import annotations

from typing import Callable

from .architecture import MLA, Architecture, MoE, Role, Shard, _Builder, _common, _deepseek, _int, _quant
from .errors import SizingError
from .kv_cache import Attention, LayerCache
from .state_cache import GatedDeltaNetState, IndexerKeys, Mamba2State, SparseMLA

SSM_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
QWEN3_5_MAX_IMAGE_TOKENS = 16384


def _ssm_bytes(cfg: dict, key: str) -> int | None:
    value = cfg.get(key)
    if value in (None, "auto"):
        return None
    if value not in SSM_DTYPE_BYTES:
        raise SizingError(f"config.json {key} {value!r} is not one of {', '.join(SSM_DTYPE_BYTES)}")
    return SSM_DTYPE_BYTES[value]


def _mamba2_tensors(b: _Builder, n: int, intermediate: int, groups: int, heads: int, state: int, kernel: int,
                    *, conv_bias: bool, proj_bias: bool) -> None:
    """MambaMixer2: in_proj to (z, x, B, C, dt), a depthwise conv over x, B, C, per-head dt bias, A and D, a gated
    RMSNorm and out_proj."""
    conv_dim = intermediate + 2 * groups * state
    b.add("mamba.in_proj", b.hidden, intermediate + conv_dim + heads, n, Shard.COLUMN, Role.ATTENTION)
    b.add("mamba.out_proj", intermediate, b.hidden, n, Shard.ROW, Role.ATTENTION)
    b.add("mamba.conv1d", kernel, conv_dim, n, Shard.COLUMN, Role.NORM)
    if conv_bias:
        b.add("mamba.conv1d.bias", 1, conv_dim, n, Shard.COLUMN, Role.BIAS)
    if proj_bias:
        b.add("mamba.in_proj.bias", 1, intermediate + conv_dim + heads, n, Shard.COLUMN, Role.BIAS)
        b.add("mamba.out_proj.bias", 1, b.hidden, n, Shard.REPLICATED, Role.BIAS)
    b.add("mamba.dt_bias_A_D", 1, 3 * heads, n, Shard.COLUMN, Role.NORM)
    b.add("mamba.norm", 1, intermediate, n, Shard.COLUMN, Role.NORM)


# --- Qwen3-Next and Qwen 3.5 ---------------------------------------------------------------------------------


def _qwen_linear_layers(cfg: dict, layers: int) -> list[bool]:
    """Per layer: True for linear attention (Gated DeltaNet). `layer_types`, else every interval-th is full."""
    types = cfg.get("layer_types")
    if types:
        if len(types) != layers:
            raise SizingError(f"config.json layer_types has {len(types)} entries for {layers} layers")
        unknown = set(types) - {"linear_attention", "full_attention"}
        if unknown:
            raise SizingError(f"config.json layer_types has {', '.join(sorted(unknown))}; "
                              f"a {cfg.get('model_type')} model has linear_attention and full_attention layers")
        return [t == "linear_attention" for t in types]
    interval = _int(cfg, "full_attention_interval", 4) or 1
    return [(i + 1) % interval != 0 for i in range(layers)]


def _qwen_hybrid(cfg: dict, model_type: str, *, moe: bool, ssm_key: str) -> Architecture:
    c = _common(cfg)
    tied = bool(cfg.get("tie_word_embeddings", False))
    layers, hidden = c["num_layers"], c["hidden_size"]
    linear = _qwen_linear_layers(cfg, layers)
    n_linear, n_full = sum(linear), layers - sum(linear)
    b = _Builder(hidden, layers)
    b.embeddings(c["vocab_size"], tied)
    # Gated attention: q_proj also emits a per-head output gate (attn_output_gate, on in every release so far).
    heads, kv_heads, head_dim = c["num_heads"], c["num_kv_heads"], c["head_dim"]
    gate = 2 if cfg.get("attn_output_gate", True) else 1
    b.add("q_proj", hidden, gate * heads * head_dim, n_full, Shard.COLUMN, Role.ATTENTION)
    b.add("k_proj", hidden, kv_heads * head_dim, n_full, Shard.KV, Role.ATTENTION, kv_heads)
    b.add("v_proj", hidden, kv_heads * head_dim, n_full, Shard.KV, Role.ATTENTION, kv_heads)
    b.add("o_proj", heads * head_dim, hidden, n_full, Shard.ROW, Role.ATTENTION)
    b.add("qk_norm", 1, 2 * head_dim, n_full, Shard.REPLICATED, Role.NORM)
    # Gated DeltaNet: q, k, v, z and the b, a gates in, a depthwise conv over q, k, v, a gated norm, out.
    k_heads, v_heads = _int(cfg, "linear_num_key_heads"), _int(cfg, "linear_num_value_heads")
    k_dim, v_dim = _int(cfg, "linear_key_head_dim"), _int(cfg, "linear_value_head_dim")
    kernel = _int(cfg, "linear_conv_kernel_dim", 4)
    key, value = k_heads * k_dim, v_heads * v_dim
    b.add("linear_attn.in_proj_qkvz", hidden, 2 * key + 2 * value, n_linear, Shard.COLUMN, Role.ATTENTION)
    b.add("linear_attn.in_proj_ba", hidden, 2 * v_heads, n_linear, Shard.COLUMN, Role.ATTENTION)
    b.add("linear_attn.conv1d", kernel, 2 * key + value, n_linear, Shard.COLUMN, Role.NORM)
    b.add("linear_attn.dt_bias_A_log", 1, 2 * v_heads, n_linear, Shard.COLUMN, Role.NORM)
    b.add("linear_attn.norm", 1, v_dim, n_linear, Shard.REPLICATED, Role.NORM)
    b.add("linear_attn.out_proj", value, hidden, n_linear, Shard.ROW, Role.ATTENTION)
    moe_info = None
    if moe:
        experts, inter = _int(cfg, "num_experts"), _int(cfg, "moe_intermediate_size")
        step = _int(cfg, "decoder_sparse_step", 1) or 1
        dense_only = set(cfg.get("mlp_only_layers") or [])
        n_sparse = sum(1 for i in range(layers) if i not in dense_only and experts and (i + 1) % step == 0)
        b.gated_mlp(_int(cfg, "intermediate_size", 0), layers - n_sparse)
        b.add("router", hidden, experts, n_sparse, Shard.REPLICATED, Role.ROUTER)
        b.gated_mlp(inter, n_sparse * experts, Role.EXPERTS, "experts")
        shared = _int(cfg, "shared_expert_intermediate_size", 0)
        b.gated_mlp(shared, n_sparse, Role.MLP, "shared_expert")
        if shared:
            b.add("shared_expert_gate", hidden, 1, n_sparse, Shard.REPLICATED, Role.ROUTER)
        moe_info = MoE(experts, _int(cfg, "num_experts_per_tok"), inter, shared, n_sparse)
    else:
        b.gated_mlp(_int(cfg, "intermediate_size"), layers)
    b.layer_norms(2)
    state = GatedDeltaNetState(k_heads, v_heads, k_dim, v_dim, kernel, ssm_bytes=_ssm_bytes(cfg, ssm_key))
    caches: tuple[LayerCache, ...] = tuple(state if lin else Attention(kv_heads, head_dim) for lin in linear)
    return Architecture(model_type=model_type, tie_word_embeddings=tied, tensors=tuple(b.tensors), caches=caches,
                        moe=moe_info, **c)


def qwen3_next(cfg: dict) -> Architecture:
    return _qwen_hybrid(cfg, "qwen3_next", moe=True, ssm_key="mamba_ssm_dtype")


def _vision_tower(b: _Builder, v: dict, out_hidden: int) -> None:
    """Qwen3_5VisionModel: a Conv3d patch embedding, learned positions, ViT blocks (LayerNorm, qkv and proj with
    bias, GELU MLP with bias) and a 2x2 patch merger into the text width. vLLM replicates none of it per rank
    beyond its tensor-parallel linears."""
    hidden, inter, depth = _int(v, "hidden_size"), _int(v, "intermediate_size"), _int(v, "depth")
    patch = _int(v, "in_channels", 3) * _int(v, "temporal_patch_size", 2) * _int(v, "patch_size") ** 2
    merged = hidden * _int(v, "spatial_merge_size", 2) ** 2
    vb = _Builder(hidden, depth)
    vb.add("visual.patch_embed", patch, hidden, 1, Shard.REPLICATED, Role.EMBEDDING)
    vb.add("visual.patch_embed.bias", 1, hidden, 1, Shard.REPLICATED, Role.BIAS)
    vb.add("visual.pos_embed", hidden, _int(v, "num_position_embeddings"), 1, Shard.REPLICATED, Role.EMBEDDING)
    vb.add("visual.qkv", hidden, 3 * hidden, depth, Shard.COLUMN, Role.ATTENTION)
    vb.add("visual.qkv.bias", 1, 3 * hidden, depth, Shard.COLUMN, Role.BIAS)
    vb.add("visual.proj", hidden, hidden, depth, Shard.ROW, Role.ATTENTION)
    vb.add("visual.fc1", hidden, inter, depth, Shard.COLUMN, Role.MLP)
    vb.add("visual.fc1.bias", 1, inter, depth, Shard.COLUMN, Role.BIAS)
    vb.add("visual.fc2", inter, hidden, depth, Shard.ROW, Role.MLP)
    vb.add("visual.block_biases_norms", 1, 2 * hidden + 4 * hidden, depth, Shard.REPLICATED, Role.NORM)
    vb.add("visual.merger.norm", 1, 2 * hidden, 1, Shard.REPLICATED, Role.NORM)
    vb.add("visual.merger.fc1", merged, merged, 1, Shard.COLUMN, Role.MLP)
    vb.add("visual.merger.fc1.bias", 1, merged, 1, Shard.COLUMN, Role.BIAS)
    vb.add("visual.merger.fc2", merged, out_hidden, 1, Shard.ROW, Role.MLP)
    vb.add("visual.merger.fc2.bias", 1, out_hidden, 1, Shard.REPLICATED, Role.BIAS)
    b.tensors.extend(vb.tensors)


def _qwen3_5(cfg: dict, *, moe: bool) -> Architecture:
    """Qwen3_5ForConditionalGeneration: the text model in text_config (model_type qwen3_5_text / _moe_text) and a
    vision tower; a text-only config (the text model alone) is read as it is."""
    outer = str(cfg["model_type"])
    text = cfg.get("text_config") or cfg
    text = {**text, "model_type": outer}
    if "tie_word_embeddings" in cfg and "text_config" in cfg:
        text["tie_word_embeddings"] = cfg["tie_word_embeddings"]
    rope = text.get("rope_parameters") or {}
    if "partial_rotary_factor" not in text and "partial_rotary_factor" in rope:
        text["partial_rotary_factor"] = rope["partial_rotary_factor"]
    if not any(k in text for k in ("torch_dtype", "dtype")):
        text["dtype"] = cfg.get("torch_dtype") or cfg.get("dtype")
    arch = _qwen_hybrid(text, outer, moe=moe, ssm_key="mamba_ssm_dtype")
    vision = cfg.get("vision_config") if "text_config" in cfg else None
    if vision:
        b = _Builder(arch.hidden_size, arch.num_layers, list(arch.tensors))
        _vision_tower(b, vision, _int(vision, "out_hidden_size", arch.hidden_size))
        object.__setattr__(arch, "tensors", tuple(b.tensors))
        # vLLM profiles one largest image: "Encoder cache will be initialized with a budget of 16384 tokens, and
        # profiled with 1 image items of the maximum feature size" (Qwen3.5-9B v0.19.0 and Qwen3.5-4B v0.29.0 logs).
        arch.extras["mm_tokens_per_image"] = QWEN3_5_MAX_IMAGE_TOKENS
    if "quantization_config" in cfg and arch.quant is None:
        object.__setattr__(arch, "quant", _quant(cfg))
    return arch


def qwen3_5(cfg: dict) -> Architecture:
    return _qwen3_5(cfg, moe=False)


def qwen3_5_moe(cfg: dict) -> Architecture:
    return _qwen3_5(cfg, moe=True)


# --- Granite 4.0-H ---------------------------------------------------------------------------------------------


def granitemoehybrid(cfg: dict) -> Architecture:
    c = _common(cfg)
    tied = bool(cfg.get("tie_word_embeddings", True))
    layers, hidden = c["num_layers"], c["hidden_size"]
    types = cfg.get("layer_types") or cfg.get("layers_block_type") or ["mamba"] * layers
    if len(types) != layers:
        raise SizingError(f"config.json layer_types has {len(types)} entries for {layers} layers")
    mamba = [t == "mamba" for t in types]
    unknown = set(types) - {"mamba", "attention"}
    if unknown:
        raise SizingError(f"config.json layer_types has {', '.join(sorted(unknown))}; "
                          "a granitemoehybrid model has mamba and attention layers")
    n_mamba, n_attn = sum(mamba), layers - sum(mamba)
    b = _Builder(hidden, layers)
    b.embeddings(c["vocab_size"], tied)
    b.gqa(c["num_heads"], c["num_kv_heads"], c["head_dim"], qkv_bias=bool(cfg.get("attention_bias")),
          o_bias=bool(cfg.get("attention_bias")), n=n_attn)
    state: LayerCache | None = None
    if n_mamba:  # Granite 4.0 "micro" is all attention
        intermediate = int(float(cfg.get("mamba_expand", 2)) * hidden)
        groups, heads = _int(cfg, "mamba_n_groups", 1), _int(cfg, "mamba_n_heads")
        state_size, kernel = _int(cfg, "mamba_d_state"), _int(cfg, "mamba_d_conv", 4)
        _mamba2_tensors(b, n_mamba, intermediate, groups, heads, state_size, kernel,
                        conv_bias=bool(cfg.get("mamba_conv_bias", True)),
                        proj_bias=bool(cfg.get("mamba_proj_bias", False)))
        state = Mamba2State(intermediate, groups, heads, _int(cfg, "mamba_d_head"), state_size, kernel,
                            chunk_size=_int(cfg, "mamba_chunk_size", 256))
    experts = _int(cfg, "num_local_experts", 0)
    inter = _int(cfg, "intermediate_size")
    moe = None
    if experts:
        b.add("router", hidden, experts, layers, Shard.REPLICATED, Role.ROUTER)
        b.gated_mlp(inter, layers * experts, Role.EXPERTS, "experts")
        moe = MoE(experts, _int(cfg, "num_experts_per_tok"), inter, _int(cfg, "shared_intermediate_size", 0), layers)
    b.gated_mlp(_int(cfg, "shared_intermediate_size", 0), layers, Role.MLP, "shared_mlp")
    b.layer_norms(2)
    caches = tuple(state if m else Attention(c["num_kv_heads"], c["head_dim"]) for m in mamba)
    if cfg.get("position_embedding_type") == "nope":
        c["rotary_dim"] = 0  # no rotary embedding, no cos/sin cache
    return Architecture(model_type="granitemoehybrid", tie_word_embeddings=tied, tensors=tuple(b.tensors),
                        caches=caches, moe=moe, **c)


# --- Nemotron-H ------------------------------------------------------------------------------------------------

NEMOTRON_KINDS = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}


def nemotron_h(cfg: dict) -> Architecture:
    pattern = cfg.get("hybrid_override_pattern")
    if not pattern:
        raise SizingError("config.json has no 'hybrid_override_pattern', which a nemotron_h model needs")
    unknown = set(pattern) - set(NEMOTRON_KINDS)
    if unknown:
        raise SizingError(f"config.json hybrid_override_pattern has {''.join(sorted(unknown))}; "
                          "a nemotron_h layer is M (Mamba2), * (attention), - (MLP) or E (MoE)")
    cfg = {**cfg, "num_hidden_layers": len(pattern)}
    if not cfg.get("head_dim") and cfg.get("attention_head_dim"):
        cfg["head_dim"] = cfg["attention_head_dim"]
    c = _common(cfg)
    tied = bool(cfg.get("tie_word_embeddings", False))
    layers, hidden = c["num_layers"], c["hidden_size"]
    count = {k: pattern.count(k) for k in NEMOTRON_KINDS}
    b = _Builder(hidden, layers)
    b.embeddings(c["vocab_size"], tied)
    b.gqa(c["num_heads"], c["num_kv_heads"], c["head_dim"], n=count["*"])
    heads, head_dim = _int(cfg, "mamba_num_heads"), _int(cfg, "mamba_head_dim")
    groups, state_size, kernel = _int(cfg, "n_groups"), _int(cfg, "ssm_state_size"), _int(cfg, "conv_kernel", 4)
    _mamba2_tensors(b, count["M"], heads * head_dim, groups, heads, state_size, kernel,
                    conv_bias=bool(cfg.get("use_conv_bias", True)), proj_bias=bool(cfg.get("use_bias", False)))
    inter = cfg.get("intermediate_size")
    sizes = inter if isinstance(inter, list) else [inter] * count["-"]
    if count["-"] and (len(sizes) < count["-"] or not all(isinstance(s, int) for s in sizes[:count["-"]])):
        raise SizingError("config.json intermediate_size must be an integer or one per MLP (-) layer")
    for size in sizes[:count["-"]]:  # squared-ReLU MLP: up and down, no gate
        b.add("mlp.up_proj", hidden, size, 1, Shard.COLUMN, Role.MLP)
        b.add("mlp.down_proj", size, hidden, 1, Shard.ROW, Role.MLP)
    moe = None
    if count["E"]:
        experts, moe_inter = _int(cfg, "n_routed_experts"), _int(cfg, "moe_intermediate_size")
        latent = cfg.get("moe_latent_size") or hidden
        shared = _int(cfg, "moe_shared_expert_intermediate_size", 0) * (_int(cfg, "n_shared_experts", 1) or 1)
        n = count["E"]
        b.add("router", hidden, experts, n, Shard.REPLICATED, Role.ROUTER)
        b.add("router.e_score_correction_bias", 1, experts, n, Shard.REPLICATED, Role.ROUTER)
        b.add("experts.up_proj", latent, moe_inter, n * experts, Shard.COLUMN, Role.EXPERTS)
        b.add("experts.down_proj", moe_inter, latent, n * experts, Shard.ROW, Role.EXPERTS)
        b.add("shared_experts.up_proj", hidden, shared, n, Shard.COLUMN, Role.MLP)
        b.add("shared_experts.down_proj", shared, hidden, n, Shard.ROW, Role.MLP)
        if cfg.get("moe_latent_size"):
            b.add("fc1_latent_proj", hidden, latent, n, Shard.REPLICATED, Role.MLP)
            b.add("fc2_latent_proj", latent, hidden, n, Shard.REPLICATED, Role.MLP)
        moe = MoE(experts, _int(cfg, "num_experts_per_tok"), moe_inter, shared, n)
    b.layer_norms(1)  # one pre-norm per block
    state = Mamba2State(heads * head_dim, groups, heads, head_dim, state_size, kernel,
                        ssm_bytes=_ssm_bytes(cfg, "mamba_ssm_cache_dtype"), ssm_default="nemotron_h_ssm_float32_since",
                        chunk_size=_int(cfg, "chunk_size", 128))
    caches = tuple(state if k == "M" else Attention(c["num_kv_heads"], c["head_dim"])
                   for k in pattern if k in "M*")
    return Architecture(model_type="nemotron_h", tie_word_embeddings=tied, tensors=tuple(b.tensors), caches=caches,
                        moe=moe, **c)


# --- DeepSeek-V3.2 ---------------------------------------------------------------------------------------------


def deepseek_v32(cfg: dict) -> Architecture:
    """DeepSeek-V3 plus, per layer, the lightning indexer: wq_b (q_lora_rank -> heads x dim), wk (hidden -> dim)
    with a LayerNorm, and weights_proj (hidden -> heads), all replicated; its keys are a second cache."""
    if not cfg.get("q_lora_rank"):
        raise SizingError("config.json has no 'q_lora_rank', which a deepseek_v32 model's indexer needs")
    arch = _deepseek(cfg)
    layers, hidden = arch.num_layers, arch.hidden_size
    heads, dim = _int(cfg, "index_n_heads"), _int(cfg, "index_head_dim")
    b = _Builder(hidden, layers, list(arch.tensors))
    b.add("indexer.wq_b", int(cfg["q_lora_rank"]), heads * dim, layers, Shard.REPLICATED, Role.ATTENTION)
    # vLLM fuses wk and weights_proj into one unquantized GEMM (fp8 wk is upcast to the model dtype at load).
    b.add("indexer.wk_weights_proj", hidden, dim + heads, layers, Shard.REPLICATED, Role.ROUTER)
    b.add("indexer.k_norm", 1, 2 * dim, layers, Shard.REPLICATED, Role.NORM)
    mla: MLA = arch.mla  # type: ignore[assignment]
    caches: list[LayerCache] = []
    for _ in range(layers):
        caches += [SparseMLA(mla.kv_lora_rank + mla.qk_rope_head_dim), IndexerKeys(dim)]
    object.__setattr__(arch, "tensors", tuple(b.tensors))
    object.__setattr__(arch, "caches", tuple(caches))
    return arch


FAMILIES: dict[str, Callable[[dict], Architecture]] = {
    "qwen3_next": qwen3_next,
    "qwen3_5": qwen3_5,
    "qwen3_5_text": qwen3_5,
    "qwen3_5_moe": qwen3_5_moe,
    "qwen3_5_moe_text": qwen3_5_moe,
    "granitemoehybrid": granitemoehybrid,
    "nemotron_h": nemotron_h,
    "deepseek_v32": deepseek_v32,
}
