"""Model architecture from a Hugging Face config.json: every weight tensor, and the attention layout.

One list of tensors serves three purposes: the exact parameter count (what transformers instantiates),
the bytes on disk and in memory under any weight format, and the share each tensor-parallel rank holds
(vLLM shards vocab, column- and row-parallel linears, replicates norms, routers and too-few KV heads).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Callable

from .errors import SizingError
from .kv_cache import Attention, LayerCache


class Shard(str, Enum):
    """How vLLM splits a tensor across tensor-parallel ranks."""

    VOCAB = "vocab"  # VocabParallelEmbedding / ParallelLMHead: vocab padded to 64, then split
    COLUMN = "column"  # ColumnParallelLinear: output features split
    ROW = "row"  # RowParallelLinear: input features split
    KV = "kv"  # K/V projections: split by KV head, replicated when TP exceeds the KV heads
    REPLICATED = "replicated"  # norms, routers, low-rank MLA down-projections


class Role(str, Enum):
    EMBEDDING = "embedding"
    LM_HEAD = "lm_head"
    ATTENTION = "attention"
    MLP = "mlp"
    EXPERTS = "experts"
    ROUTER = "router"
    NORM = "norm"
    BIAS = "bias"
    VISION = "vision"  # the vision tower and its projector: kept in the model dtype by every format here


@dataclass(frozen=True)
class Tensor:
    """A weight tensor of shape (out_features, in_features), present `count` times in the model."""

    name: str
    in_features: int
    out_features: int
    count: int
    shard: Shard
    role: Role
    kv_heads: int = 0  # for Shard.KV: how many KV heads the output features hold

    @property
    def parameters(self) -> int:
        return self.in_features * self.out_features * self.count

    @property
    def is_linear(self) -> bool:
        """Weight formats (AWQ, GPTQ, fp8, int8) quantize the linear layers inside the decoder blocks."""
        return self.role in (Role.ATTENTION, Role.MLP, Role.EXPERTS)


@dataclass(frozen=True)
class MLA:
    """DeepSeek multi-head latent attention: the KV cache holds one latent of kv_lora_rank + rope dims."""

    q_lora_rank: int | None
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class MoE:
    num_experts: int
    experts_per_token: int
    expert_intermediate_size: int
    shared_intermediate_size: int  # 0 without shared experts
    moe_layers: int


@dataclass(frozen=True)
class QuantConfig:
    """What the checkpoint's quantization_config says about its weights."""

    method: str  # awq | gptq | fp8 | compressed-tensors-fp8 | compressed-tensors-int8 | ...
    bits: int
    group_size: int | None = None  # AWQ/GPTQ groups along the input features
    block: tuple[int, int] | None = None  # block-wise fp8 scales (DeepSeek-V3)


@dataclass(frozen=True)
class Architecture:
    model_type: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool
    torch_dtype: str
    max_position_embeddings: int
    rotary_dim: int
    tensors: tuple[Tensor, ...]
    caches: tuple[LayerCache, ...]  # the caches vLLM registers, in layer order (kv_cache.py)
    mla: MLA | None = None
    moe: MoE | None = None
    quant: QuantConfig | None = None
    name: str = ""
    extras: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def parameters(self) -> int:
        return sum(t.parameters for t in self.tensors)

    @property
    def active_parameters(self) -> int:
        """Parameters one token touches: all but the experts it is not routed to."""
        if self.moe is None:
            return self.parameters
        experts = sum(t.parameters for t in self.tensors if t.role is Role.EXPERTS)
        return self.parameters - experts + experts * self.moe.experts_per_token // self.moe.num_experts

    @property
    def context_window(self) -> int:
        """The longest max_model_len vLLM accepts: max_position_embeddings, stretched by dynamic/YaRN rope
        scaling whose config keeps the original length separately."""
        return int(self.extras.get("context_window") or self.max_position_embeddings)


# --- config helpers -------------------------------------------------------------------------------------


def _get(cfg: dict, key: str, default: Any = None, *, required: bool = False) -> Any:
    value = cfg.get(key, default)
    if value is None and required:
        raise SizingError(f"config.json has no '{key}', which a {cfg.get('model_type')} model needs")
    return value


def _int(cfg: dict, key: str, default: int | None = None) -> int:
    value = _get(cfg, key, default, required=default is None)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 0:
        raise SizingError(f"config.json field '{key}' must be a non-negative integer, got {value!r}")
    return int(value)


def _dtype(cfg: dict) -> str:
    # transformers >= 4.56 writes "dtype"; older configs "torch_dtype"; absent means float32 (PretrainedConfig).
    value = cfg.get("torch_dtype") or cfg.get("dtype") or "float32"
    value = str(value).replace("torch.", "")
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    value = aliases.get(value, value)
    if value not in ("bfloat16", "float16", "float32"):
        raise SizingError(f"config.json torch_dtype {value!r} is not one of bfloat16, float16, float32")
    return value


def _quant(cfg: dict) -> QuantConfig | None:
    q = cfg.get("quantization_config")
    if not q:
        return None
    method = str(q.get("quant_method", "")).lower()
    if method in ("awq", "gptq"):
        bits = int(q.get("bits", q.get("w_bit", 4)))
        group = int(q.get("group_size", q.get("q_group_size", 128)))
        if group <= 0:  # GPTQ group_size -1 means one group per input row
            group = 0
        return QuantConfig(method, bits, group_size=group or None)
    if method == "fp8":
        block = q.get("weight_block_size")
        return QuantConfig("fp8", 8, block=tuple(block) if block else None)
    if method == "compressed-tensors":
        groups = q.get("config_groups") or {}
        weights = next((g.get("weights") for g in groups.values() if g.get("weights")), None)
        if not weights:
            raise SizingError("config.json compressed-tensors quantization_config has no weights scheme")
        bits, kind = int(weights.get("num_bits", 8)), str(weights.get("type", "int"))
        group = weights.get("group_size")
        if kind == "float" and bits == 8:
            return QuantConfig("compressed-tensors-fp8", 8)
        if kind == "int" and bits == 8:
            return QuantConfig("compressed-tensors-int8", 8)
        if kind == "int" and bits == 4:
            return QuantConfig("compressed-tensors-int4", 4, group_size=int(group) if group else None)
        raise SizingError(f"compressed-tensors weights of {bits}-bit {kind} are not supported")
    if method == "mxfp4":
        # gpt-oss: the routed experts in MXFP4 (4-bit values, one 8-bit scale per 32), every module in
        # modules_to_not_convert (attention, router, embeddings, LM head) in the model dtype.
        return QuantConfig("mxfp4", 4, group_size=32)
    if method in ("bitsandbytes", "gguf", "hqq", "eetq", "aqlm", "exl2"):
        raise SizingError(f"quantization method '{method}' is not supported; supported: awq, gptq, fp8, compressed-tensors, mxfp4")
    raise SizingError(f"unknown quantization_config.quant_method '{method}'")


# --- the building blocks every family shares ---------------------------------------------------------------


@dataclass
class _Builder:
    hidden: int
    layers: int
    tensors: list[Tensor] = field(default_factory=list)

    def add(self, name, in_f, out_f, count, shard, role, kv_heads=0):
        if in_f and out_f and count:
            self.tensors.append(Tensor(name, in_f, out_f, count, shard, role, kv_heads))

    def embeddings(self, vocab: int, tied: bool):
        self.add("embed_tokens", self.hidden, vocab, 1, Shard.VOCAB, Role.EMBEDDING)
        if not tied:
            self.add("lm_head", self.hidden, vocab, 1, Shard.VOCAB, Role.LM_HEAD)
        self.add("norm", 1, self.hidden, 1, Shard.REPLICATED, Role.NORM)

    def gqa(self, heads: int, kv_heads: int, head_dim: int, *, qkv_bias=False, o_bias=False, qk_norm=False, n=None):
        n = self.layers if n is None else n
        q, kv = heads * head_dim, kv_heads * head_dim
        self.add("q_proj", self.hidden, q, n, Shard.COLUMN, Role.ATTENTION)
        self.add("k_proj", self.hidden, kv, n, Shard.KV, Role.ATTENTION, kv_heads)
        self.add("v_proj", self.hidden, kv, n, Shard.KV, Role.ATTENTION, kv_heads)
        self.add("o_proj", q, self.hidden, n, Shard.ROW, Role.ATTENTION)
        if qkv_bias:
            self.add("q_proj.bias", 1, q, n, Shard.COLUMN, Role.BIAS)
            self.add("k_proj.bias", 1, kv, n, Shard.KV, Role.BIAS, kv_heads)
            self.add("v_proj.bias", 1, kv, n, Shard.KV, Role.BIAS, kv_heads)
        if o_bias:
            self.add("o_proj.bias", 1, self.hidden, n, Shard.REPLICATED, Role.BIAS)
        if qk_norm:
            self.add("q_norm", 1, head_dim, n, Shard.REPLICATED, Role.NORM)
            self.add("k_norm", 1, head_dim, n, Shard.REPLICATED, Role.NORM)

    def gated_mlp(self, intermediate: int, count: int, role: Role = Role.MLP, prefix: str = "mlp", bias=False):
        self.add(f"{prefix}.gate_proj", self.hidden, intermediate, count, Shard.COLUMN, role)
        self.add(f"{prefix}.up_proj", self.hidden, intermediate, count, Shard.COLUMN, role)
        self.add(f"{prefix}.down_proj", intermediate, self.hidden, count, Shard.ROW, role)
        if bias:
            self.add(f"{prefix}.gate_proj.bias", 1, intermediate, count, Shard.COLUMN, Role.BIAS)
            self.add(f"{prefix}.up_proj.bias", 1, intermediate, count, Shard.COLUMN, Role.BIAS)
            self.add(f"{prefix}.down_proj.bias", 1, self.hidden, count, Shard.REPLICATED, Role.BIAS)

    def layer_norms(self, per_layer: int):
        self.add("layer_norms", 1, self.hidden, self.layers * per_layer, Shard.REPLICATED, Role.NORM)


def _common(cfg: dict) -> dict:
    hidden = _int(cfg, "hidden_size")
    heads = _int(cfg, "num_attention_heads")
    if heads == 0 or hidden == 0:
        raise SizingError("config.json hidden_size and num_attention_heads must be positive")
    kv_heads = _int(cfg, "num_key_value_heads", heads)
    head_dim = cfg.get("head_dim") or hidden // heads
    layers = _int(cfg, "num_hidden_layers")
    if layers == 0:
        raise SizingError("config.json num_hidden_layers must be positive")
    if kv_heads == 0 or heads % kv_heads:
        raise SizingError(f"config.json num_key_value_heads {kv_heads} must divide num_attention_heads {heads}")
    rope_dim = int(head_dim * float(cfg.get("partial_rotary_factor", 1.0)))
    return dict(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=int(head_dim),
        vocab_size=_int(cfg, "vocab_size"),
        torch_dtype=_dtype(cfg),
        max_position_embeddings=_int(cfg, "max_position_embeddings", 2048),
        rotary_dim=rope_dim,
        quant=_quant(cfg),
    )


def _windows(cfg: dict, layers: int, *, all_layers_if_set: bool) -> tuple[int | None, ...]:
    """Per-layer sliding windows as vLLM applies them."""
    window = cfg.get("sliding_window")
    types = cfg.get("layer_types")
    if types:
        if len(types) != layers:
            raise SizingError(f"config.json layer_types has {len(types)} entries for {layers} layers")
        return tuple(window if t == "sliding_attention" else None for t in types)
    if window and all_layers_if_set:
        return (int(window),) * layers
    return (None,) * layers


def _attention_caches(c: dict, windows: tuple[int | None, ...]) -> tuple[LayerCache, ...]:
    """One KV cache per decoder layer, of the model's KV heads and head size; sliding where a window applies."""
    return tuple(Attention(c["num_kv_heads"], c["head_dim"], sliding_window=w) for w in windows)


# --- families -----------------------------------------------------------------------------------------------


def _llama_like(cfg: dict, *, qkv_bias=False, qk_norm=False, tied_default=False, windows=None) -> Architecture:
    c = _common(cfg)
    tied = bool(cfg.get("tie_word_embeddings", tied_default))
    b = _Builder(c["hidden_size"], c["num_layers"])
    b.embeddings(c["vocab_size"], tied)
    attention_bias = bool(cfg.get("attention_bias", False))
    b.gqa(
        c["num_heads"], c["num_kv_heads"], c["head_dim"],
        qkv_bias=qkv_bias or attention_bias, o_bias=attention_bias, qk_norm=qk_norm,
    )
    b.gated_mlp(_int(cfg, "intermediate_size"), c["num_layers"], bias=bool(cfg.get("mlp_bias", False)))
    b.layer_norms(2)
    layer_windows = windows if windows is not None else _windows(cfg, c["num_layers"], all_layers_if_set=True)
    return Architecture(
        model_type=cfg["model_type"], tie_word_embeddings=tied, tensors=tuple(b.tensors),
        caches=_attention_caches(c, layer_windows), **c,
    )


def _qwen_windows(cfg: dict, layers: int) -> tuple[int | None, ...]:
    # Qwen2/Qwen3 carry a sliding_window value but only apply it with use_sliding_window, and then only to
    # layers from max_window_layers on (transformers Qwen2Config.layer_types).
    if cfg.get("layer_types"):
        return _windows(cfg, layers, all_layers_if_set=False)
    if not cfg.get("use_sliding_window"):
        return (None,) * layers
    start = int(cfg.get("max_window_layers", layers))
    return tuple(int(cfg["sliding_window"]) if i >= start else None for i in range(layers))


def llama(cfg: dict) -> Architecture:
    return _llama_like(cfg)


def mistral(cfg: dict) -> Architecture:
    return _llama_like(cfg)


def qwen2(cfg: dict) -> Architecture:
    return _llama_like(cfg, qkv_bias=True, windows=_qwen_windows(cfg, _int(cfg, "num_hidden_layers")))


def qwen3(cfg: dict) -> Architecture:
    return _llama_like(cfg, qk_norm=True, windows=_qwen_windows(cfg, _int(cfg, "num_hidden_layers")))


def _moe_arch(cfg, c, b, tied, moe: MoE, windows) -> Architecture:
    return Architecture(
        model_type=cfg["model_type"], tie_word_embeddings=tied, tensors=tuple(b.tensors),
        caches=_attention_caches(c, windows), moe=moe, **c,
    )


def mixtral(cfg: dict) -> Architecture:
    c = _common(cfg)
    tied = bool(cfg.get("tie_word_embeddings", False))
    layers, hidden = c["num_layers"], c["hidden_size"]
    experts, inter = _int(cfg, "num_local_experts"), _int(cfg, "intermediate_size")
    b = _Builder(hidden, layers)
    b.embeddings(c["vocab_size"], tied)
    b.gqa(c["num_heads"], c["num_kv_heads"], c["head_dim"])
    b.add("router", hidden, experts, layers, Shard.REPLICATED, Role.ROUTER)
    b.gated_mlp(inter, layers * experts, Role.EXPERTS, "experts")
    b.layer_norms(2)
    moe = MoE(experts, _int(cfg, "num_experts_per_tok"), inter, 0, layers)
    return _moe_arch(cfg, c, b, tied, moe, _windows(cfg, layers, all_layers_if_set=True))


def _qwen_moe(cfg: dict, *, qkv_bias: bool, qk_norm: bool) -> Architecture:
    c = _common(cfg)
    tied = bool(cfg.get("tie_word_embeddings", False))
    layers, hidden = c["num_layers"], c["hidden_size"]
    experts = _int(cfg, "num_experts")
    step = _int(cfg, "decoder_sparse_step", 1) or 1
    dense_only = set(cfg.get("mlp_only_layers") or [])
    sparse = [i for i in range(layers) if i not in dense_only and experts > 0 and (i + 1) % step == 0]
    n_sparse, n_dense = len(sparse), layers - len(sparse)
    b = _Builder(hidden, layers)
    b.embeddings(c["vocab_size"], tied)
    b.gqa(c["num_heads"], c["num_kv_heads"], c["head_dim"], qkv_bias=qkv_bias, qk_norm=qk_norm)
    b.gated_mlp(_int(cfg, "intermediate_size"), n_dense)
    expert_inter = _int(cfg, "moe_intermediate_size")
    b.add("router", hidden, experts, n_sparse, Shard.REPLICATED, Role.ROUTER)
    b.gated_mlp(expert_inter, n_sparse * experts, Role.EXPERTS, "experts")
    shared = _int(cfg, "shared_expert_intermediate_size", 0)
    if shared:
        b.gated_mlp(shared, n_sparse, Role.MLP, "shared_expert")
        b.add("shared_expert_gate", hidden, 1, n_sparse, Shard.REPLICATED, Role.ROUTER)
    b.layer_norms(2)
    moe = MoE(experts, _int(cfg, "num_experts_per_tok"), expert_inter, shared, n_sparse)
    return _moe_arch(cfg, c, b, tied, moe, _qwen_windows(cfg, layers))


def qwen3_moe(cfg: dict) -> Architecture:
    return _qwen_moe(cfg, qkv_bias=bool(cfg.get("attention_bias", False)), qk_norm=True)


def qwen2_moe(cfg: dict) -> Architecture:
    return _qwen_moe(cfg, qkv_bias=True, qk_norm=False)


def gemma2(cfg: dict) -> Architecture:
    c = _common(cfg)
    layers = c["num_layers"]
    b = _Builder(c["hidden_size"], layers)
    b.embeddings(c["vocab_size"], tied=True)  # Gemma always ties the LM head to the embeddings
    bias = bool(cfg.get("attention_bias", False))
    b.gqa(c["num_heads"], c["num_kv_heads"], c["head_dim"], qkv_bias=bias, o_bias=bias)
    b.gated_mlp(_int(cfg, "intermediate_size"), layers)
    b.layer_norms(4)  # input, post-attention, pre-feedforward, post-feedforward
    if cfg.get("layer_types"):
        windows = _windows(cfg, layers, all_layers_if_set=False)
    else:  # transformers Gemma2: even layers slide, odd layers attend globally
        w = cfg.get("sliding_window") or 4096
        windows = tuple(int(w) if i % 2 == 0 else None for i in range(layers))
    return Architecture(model_type="gemma2", tie_word_embeddings=True, tensors=tuple(b.tensors),
                        caches=_attention_caches(c, windows), **c)


def phi3(cfg: dict) -> Architecture:
    # Phi-3 fuses qkv_proj and gate_up_proj; the parameter count equals the unfused form.
    return _llama_like(cfg)


def gpt_oss(cfg: dict) -> Architecture:
    """gpt-oss (vLLM gpt_oss.py): biased attention with one learned sink per head, a biased router and biased
    MoE experts in every layer, sliding windows on even layers and full attention on odd ones."""
    c = _common(cfg)
    layers, hidden = c["num_layers"], c["hidden_size"]
    tied = bool(cfg.get("tie_word_embeddings", False))
    experts, inter = _int(cfg, "num_local_experts"), _int(cfg, "intermediate_size")
    b = _Builder(hidden, layers)
    b.embeddings(c["vocab_size"], tied)
    b.gqa(c["num_heads"], c["num_kv_heads"], c["head_dim"], qkv_bias=True, o_bias=True)
    b.add("sinks", 1, c["num_heads"], layers, Shard.COLUMN, Role.BIAS)  # split by head like q_proj
    b.add("router", hidden, experts, layers, Shard.REPLICATED, Role.ROUTER)
    b.add("router.bias", 1, experts, layers, Shard.REPLICATED, Role.BIAS)
    b.gated_mlp(inter, layers * experts, Role.EXPERTS, "experts", bias=True)
    b.layer_norms(2)
    window = _int(cfg, "sliding_window")
    # vLLM applies the window to layer_idx % 2 == 0, whatever layer_types says (the released configs agree).
    windows = tuple(window if i % 2 == 0 else None for i in range(layers))
    moe = MoE(experts, _int(cfg, "num_experts_per_tok"), inter, 0, layers)
    return _moe_arch(cfg, c, b, tied, moe, windows)


def gemma3_text(cfg: dict) -> Architecture:
    """Gemma 3 text (vLLM gemma3.py): Gemma 2's four norms per layer plus q/k norms, tied embeddings, and
    layer_types (default: five sliding layers, then one global)."""
    cfg = {**GEMMA3_TEXT_DEFAULTS, **cfg}
    c = _common(cfg)
    layers = c["num_layers"]
    b = _Builder(c["hidden_size"], layers)
    b.embeddings(c["vocab_size"], tied=True)
    bias = bool(cfg.get("attention_bias", False))
    b.gqa(c["num_heads"], c["num_kv_heads"], c["head_dim"], qkv_bias=bias, o_bias=bias, qk_norm=True)
    b.gated_mlp(_int(cfg, "intermediate_size"), layers)
    b.layer_norms(4)
    if not cfg.get("layer_types"):
        pattern = _int(cfg, "sliding_window_pattern", 6)
        cfg = {**cfg, "layer_types": ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(layers)]}
    windows = _windows(cfg, layers, all_layers_if_set=False)
    arch = Architecture(model_type=cfg["model_type"], tie_word_embeddings=True, tensors=tuple(b.tensors),
                        caches=_attention_caches(c, windows), **c)
    rope = cfg.get("rope_scaling") or {}
    factor = float(rope.get("factor", 1.0)) if (rope.get("rope_type") or rope.get("type")) == "linear" else 1.0
    # vLLM LinearScalingRotaryEmbedding caches max_position x factor positions; the local rope is unscaled.
    arch.extras["rope_cache_positions"] = [int(c["max_position_embeddings"] * factor), c["max_position_embeddings"]]
    return arch


# transformers Gemma3TextConfig defaults: a multimodal config.json leaves them out of text_config.
GEMMA3_TEXT_DEFAULTS = {
    "vocab_size": 262_208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 131_072,
    "sliding_window": 4096,
}
# transformers SiglipVisionConfig defaults.
SIGLIP_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_channels": 3,
                   "image_size": 224, "patch_size": 16}


def _vit_layers(b: _Builder, h: int, inter: int, n: int, out_proj: str) -> None:
    """n ViT encoder layers as vLLM shards them: biased q/k/v, the output projection and a biased two-layer MLP
    (SigLIP and Llama 4's vision encoder alike; only the output projection's name differs)."""
    R = Role.VISION
    for name in ("q_proj", "k_proj", "v_proj"):
        b.add(f"vision.{name}", h, h, n, Shard.COLUMN, R)
        b.add(f"vision.{name}.bias", 1, h, n, Shard.COLUMN, R)
    b.add(f"vision.{out_proj}", h, h, n, Shard.ROW, R)
    b.add("vision.fc1", h, inter, n, Shard.COLUMN, R)
    b.add("vision.fc1.bias", 1, inter, n, Shard.COLUMN, R)
    b.add("vision.fc2", inter, h, n, Shard.ROW, R)
    b.add("vision.biases", 1, h, 2 * n, Shard.REPLICATED, R)  # the output projection's and fc2's biases


def _siglip_tower(b: _Builder, vision: dict) -> int:
    """A SigLIP vision encoder without its pooling head (vision_use_head false): conv patch embedding, learned
    positions, pre-norm layers with biased attention and MLP, a final LayerNorm. Returns its hidden size."""
    v = {**SIGLIP_DEFAULTS, **vision}
    h, inter, n = v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"]
    patch, channels = v["patch_size"], v["num_channels"]
    R = Role.VISION
    b.add("vision.patch_embedding", channels * patch * patch, h, 1, Shard.REPLICATED, R)
    b.add("vision.patch_embedding.bias", 1, h, 1, Shard.REPLICATED, R)
    b.add("vision.position_embedding", h, (v["image_size"] // patch) ** 2, 1, Shard.REPLICATED, R)
    _vit_layers(b, h, inter, n, "out_proj")
    b.add("vision.layer_norms", 1, h, 4 * n + 2, Shard.REPLICATED, R)  # two LayerNorms (weight, bias) per layer, post
    return h


def gemma3(cfg: dict) -> Architecture:
    """Gemma 3 image-text checkpoints (Gemma3ForConditionalGeneration): the text model, a SigLIP tower and a
    projector (mm_input_projection_weight, vision-width x text-width, and an RMSNorm of the vision width)."""
    if "text_config" not in cfg:  # Gemma3ForCausalLM checkpoints saved with model_type gemma3
        return gemma3_text({**cfg, "model_type": "gemma3"})
    text = {"model_type": "gemma3", "torch_dtype": cfg.get("torch_dtype") or cfg.get("dtype"), **cfg["text_config"]}
    text["model_type"] = "gemma3"
    arch = gemma3_text(text)
    b = _Builder(arch.hidden_size, arch.num_layers, list(arch.tensors))
    vision_hidden = _siglip_tower(b, cfg.get("vision_config") or {})
    b.add("mm_input_projection", vision_hidden, arch.hidden_size, 1, Shard.REPLICATED, Role.VISION)
    b.add("mm_soft_emb_norm", 1, vision_hidden, 1, Shard.REPLICATED, Role.VISION)
    arch = replace(arch, tensors=tuple(b.tensors), quant=_quant(cfg) or arch.quant)
    arch.extras["mm_tokens_per_image"] = int(cfg.get("mm_tokens_per_image", 256))
    return arch


def llama4_text(cfg: dict) -> Architecture:
    """Llama 4 text (vLLM llama4.py): MoE layers every interleave_moe_layer_step-th (routed experts, one shared
    expert, a router), dense MLPs of intermediate_size_mlp elsewhere; RoPE layers attend in chunks of
    attention_chunk_size, the NoPE layers (no_rope_layers 0, every fourth) attend globally."""
    c = _common(cfg)
    layers, hidden = c["num_layers"], c["hidden_size"]
    tied = bool(cfg.get("tie_word_embeddings", False))
    experts, inter = _int(cfg, "num_local_experts"), _int(cfg, "intermediate_size")
    step = _int(cfg, "interleave_moe_layer_step", 1)
    n_moe = sum(1 for i in range(layers) if step > 0 and (i + 1) % step == 0)
    b = _Builder(hidden, layers)
    b.embeddings(c["vocab_size"], tied)
    b.gqa(c["num_heads"], c["num_kv_heads"], c["head_dim"], qkv_bias=bool(cfg.get("attention_bias")))
    b.gated_mlp(_int(cfg, "intermediate_size_mlp"), layers - n_moe)
    b.add("router", hidden, experts, n_moe, Shard.REPLICATED, Role.ROUTER)
    b.gated_mlp(inter, n_moe * experts, Role.EXPERTS, "experts")
    b.gated_mlp(inter, n_moe, Role.MLP, "shared_expert")
    b.layer_norms(2)
    nope = cfg.get("no_rope_layers") or [int((i + 1) % 4 != 0) for i in range(layers)]
    chunk = cfg.get("attention_chunk_size")
    caches = tuple(Attention(c["num_kv_heads"], c["head_dim"], attention_chunk_size=chunk if nope[i] else None)
                   for i in range(layers))
    moe = MoE(experts, _int(cfg, "num_experts_per_tok"), inter, inter, n_moe)
    return Architecture(model_type=cfg["model_type"], tie_word_embeddings=tied, tensors=tuple(b.tensors),
                        caches=caches, moe=moe, **c)


def llama4(cfg: dict) -> Architecture:
    """Llama 4 image-text checkpoints: the text model, a ViT (class and position embeddings, linear patch
    embedding, biased attention and MLP, LayerNorms), a pixel-shuffle adapter MLP and a linear projector."""
    if "text_config" not in cfg:
        return llama4_text(cfg)
    text = {"torch_dtype": cfg.get("torch_dtype") or cfg.get("dtype"), **cfg["text_config"], "model_type": "llama4"}
    arch = llama4_text(text)
    v = cfg.get("vision_config") or {}
    h, inter, n, patch = v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"], v["patch_size"]
    R = Role.VISION
    b = _Builder(arch.hidden_size, arch.num_layers, list(arch.tensors))
    b.add("vision.class_embedding", 1, h, 1, Shard.REPLICATED, R)
    b.add("vision.positional_embedding", h, (v["image_size"] // patch) ** 2 + 1, 1, Shard.REPLICATED, R)
    b.add("vision.patch_embedding", v.get("num_channels", 3) * patch * patch, h, 1, Shard.REPLICATED, R)
    b.add("vision.layernorm_pre_post", 1, h, 4, Shard.REPLICATED, R)
    _vit_layers(b, h, inter, n, "o_proj")
    b.add("vision.layer_norms", 1, h, 4 * n, Shard.REPLICATED, R)
    shuffled = int(h / v.get("pixel_shuffle_ratio", 0.5) ** 2)
    b.add("vision.adapter.fc1", shuffled, v["projector_input_dim"], 1, Shard.COLUMN, R)
    b.add("vision.adapter.fc2", v["projector_input_dim"], v["projector_output_dim"], 1, Shard.ROW, R)
    b.add("multi_modal_projector", v["vision_output_dim"], arch.hidden_size, 1, Shard.REPLICATED, R)
    arch = replace(arch, tensors=tuple(b.tensors), quant=_quant(cfg) or arch.quant)
    # vLLM profiles the encoder with its largest image: chunks of (image_size / patch)^2 x ratio^2 tokens.
    arch.extras["mm_tokens_per_image"] = int((v["image_size"] // patch) ** 2 * v.get("pixel_shuffle_ratio", 0.5) ** 2)
    return arch


def mistral3(cfg: dict) -> Architecture:
    """Mistral Small 3.x image-text checkpoints (Mistral3ForConditionalGeneration): a Mistral or Ministral 3 text
    model, the Pixtral vision encoder (unbiased conv patches, RMSNorms, gated MLPs, 2-D rope: no position
    weights) and a projector (RMSNorm, spatial patch merger, two linears)."""
    text = {"torch_dtype": cfg.get("torch_dtype") or cfg.get("dtype"), **cfg["text_config"]}
    arch = _llama_like({**text, "model_type": "mistral3"})
    v = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "patch_size": 16,
         "num_channels": 3, "image_size": 1024, **(cfg.get("vision_config") or {})}  # PixtralVisionConfig defaults
    h, inter, n, patch = v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"], v["patch_size"]
    merge = int(cfg.get("spatial_merge_size", 2))
    R = Role.VISION
    b = _Builder(arch.hidden_size, arch.num_layers, list(arch.tensors))
    b.add("vision.patch_conv", v["num_channels"] * patch * patch, h, 1, Shard.REPLICATED, R)
    b.add("vision.ln_pre", 1, h, 1, Shard.REPLICATED, R)
    for name in ("q_proj", "k_proj", "v_proj"):
        b.add(f"vision.{name}", h, h, n, Shard.COLUMN, R)
    b.add("vision.o_proj", h, h, n, Shard.ROW, R)
    b.add("vision.gate_proj", h, inter, n, Shard.COLUMN, R)
    b.add("vision.up_proj", h, inter, n, Shard.COLUMN, R)
    b.add("vision.down_proj", inter, h, n, Shard.ROW, R)
    b.add("vision.norms", 1, h, 2 * n, Shard.REPLICATED, R)
    bias = bool(cfg.get("multimodal_projector_bias", False))
    b.add("projector.norm", 1, h, 1, Shard.REPLICATED, R)
    b.add("projector.patch_merger", h * merge * merge, h, 1, Shard.REPLICATED, R)
    b.add("projector.linear_1", h, arch.hidden_size, 1, Shard.COLUMN, R)
    b.add("projector.linear_2", arch.hidden_size, arch.hidden_size, 1, Shard.ROW, R)
    if bias:
        b.add("projector.biases", 1, arch.hidden_size, 2, Shard.REPLICATED, R)
    arch = replace(arch, tensors=tuple(b.tensors), quant=_quant(cfg) or arch.quant)
    arch.extras["mm_tokens_per_image"] = (v["image_size"] // patch // merge) ** 2
    return arch


def glm4_moe(cfg: dict) -> Architecture:
    """GLM-4.5 / 4.6 (vLLM glm4_moe.py): GQA with wide heads (heads x head_dim above hidden) and partial rope,
    optional q/k norms; dense MLPs in the first first_k_dense_replace layers, then routed experts with one shared
    MLP of moe_intermediate_size x n_shared_experts and a sigmoid router. The MTP layer is not loaded."""
    c = _common(cfg)
    layers, hidden = c["num_layers"], c["hidden_size"]
    tied = bool(cfg.get("tie_word_embeddings", False))
    experts, inter = _int(cfg, "n_routed_experts"), _int(cfg, "moe_intermediate_size")
    dense = min(_int(cfg, "first_k_dense_replace", 1), layers)
    n_moe = layers - dense
    shared = inter * _int(cfg, "n_shared_experts", 1)
    b = _Builder(hidden, layers)
    b.embeddings(c["vocab_size"], tied)
    b.gqa(c["num_heads"], c["num_kv_heads"], c["head_dim"], qkv_bias=bool(cfg.get("attention_bias")),
          qk_norm=bool(cfg.get("use_qk_norm")))
    b.gated_mlp(_int(cfg, "intermediate_size"), dense)
    b.add("router", hidden, experts, n_moe, Shard.REPLICATED, Role.ROUTER)
    b.gated_mlp(inter, n_moe * experts, Role.EXPERTS, "experts")
    b.gated_mlp(shared, n_moe, Role.MLP, "shared_experts")
    b.layer_norms(2)
    moe = MoE(experts, _int(cfg, "num_experts_per_tok"), inter, shared, n_moe)
    return _moe_arch(cfg, c, b, tied, moe, (None,) * layers)


def gemma4_text(cfg: dict) -> Architecture:
    """Gemma 4 text (vLLM gemma4.py, transformers Gemma4TextConfig): Gemma 3's four norms and q/k norms, with
    per-layer head sizes (full-attention layers use global_head_dim and, with attention_k_eq_v, their own KV
    heads and no v_proj), the last num_kv_shared_layers layers reading the KV cache of the last earlier layer of
    their type (no cache, no k/v weights; double-wide MLPs with use_double_wide_mlp), per-layer input embeddings
    (hidden_size_per_layer_input) and an optional MoE block beside the dense MLP."""
    cfg = {**GEMMA4_TEXT_DEFAULTS, **cfg}
    c = _common(cfg)
    layers, hidden, heads = c["num_layers"], c["hidden_size"], c["num_heads"]
    types = list(cfg.get("layer_types") or
                 ["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(layers)])
    if len(types) != layers:
        raise SizingError(f"config.json layer_types has {len(types)} entries for {layers} layers")
    types[-1] = "full_attention"  # transformers forces the last layer global
    k_eq_v = bool(cfg.get("attention_k_eq_v", False))
    global_kv = cfg.get("num_global_key_value_heads") if k_eq_v else None
    shared = _int(cfg, "num_kv_shared_layers", 0)
    first_shared = layers - shared
    inter = _int(cfg, "intermediate_size")
    ple = _int(cfg, "hidden_size_per_layer_input", 0)
    b = _Builder(hidden, layers)
    b.embeddings(c["vocab_size"], bool(cfg.get("tie_word_embeddings", True)))
    caches: list[LayerCache] = []
    for i, kind in enumerate(types):
        full = kind == "full_attention"
        head = int(cfg.get("global_head_dim") or 512) if full else c["head_dim"]
        kv = int(global_kv) if full and global_kv else c["num_kv_heads"]
        b.add("q_proj", hidden, heads * head, 1, Shard.COLUMN, Role.ATTENTION)
        b.add("o_proj", heads * head, hidden, 1, Shard.ROW, Role.ATTENTION)
        b.add("q_norm", 1, head, 1, Shard.REPLICATED, Role.NORM)
        if i < first_shared:
            b.add("k_proj", hidden, kv * head, 1, Shard.KV, Role.ATTENTION, kv)
            if not (full and k_eq_v):
                b.add("v_proj", hidden, kv * head, 1, Shard.KV, Role.ATTENTION, kv)
            b.add("k_norm", 1, head, 1, Shard.REPLICATED, Role.NORM)
            caches.append(Attention(kv, head, sliding_window=None if full else _int(cfg, "sliding_window")))
        wide = 2 if cfg.get("use_double_wide_mlp") and i >= first_shared else 1
        b.gated_mlp(inter * wide, 1)
    b.layer_norms(4)
    moe = None
    if cfg.get("enable_moe_block") or cfg.get("num_experts"):
        experts, moe_inter = _int(cfg, "num_experts"), _int(cfg, "moe_intermediate_size")
        b.add("router.proj", hidden, experts, layers, Shard.REPLICATED, Role.ROUTER)
        b.add("router.scales", 1, hidden + experts, layers, Shard.REPLICATED, Role.NORM)
        b.gated_mlp(moe_inter, layers * experts, Role.EXPERTS, "experts")
        b.add("moe_norms", 1, hidden, 3 * layers, Shard.REPLICATED, Role.NORM)
        moe = MoE(experts, _int(cfg, "top_k_experts"), moe_inter, 0, layers)
    if ple:
        per_layer_vocab = _int(cfg, "vocab_size_per_layer_input", c["vocab_size"])
        b.add("embed_tokens_per_layer", layers * ple, per_layer_vocab, 1, Shard.VOCAB, Role.EMBEDDING)
        b.add("per_layer_model_projection", hidden, layers * ple, 1, Shard.REPLICATED, Role.MLP)
        b.add("per_layer_projection_norm", 1, ple, 1, Shard.REPLICATED, Role.NORM)
        b.add("per_layer_input_gate", hidden, ple, layers, Shard.REPLICATED, Role.MLP)
        b.add("per_layer_projection", ple, hidden, layers, Shard.REPLICATED, Role.MLP)
        b.add("post_per_layer_input_norm", 1, hidden, layers, Shard.REPLICATED, Role.NORM)
    return Architecture(model_type=cfg["model_type"], tie_word_embeddings=bool(cfg.get("tie_word_embeddings", True)),
                        tensors=tuple(b.tensors), caches=tuple(caches), moe=moe, **c)


# transformers Gemma4TextConfig / Gemma4VisionConfig defaults, for keys a config.json leaves out.
GEMMA4_TEXT_DEFAULTS = {
    "vocab_size": 262_144, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 30,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 131_072,
    "sliding_window": 512, "vocab_size_per_layer_input": 262_144, "hidden_size_per_layer_input": 256,
    "tie_word_embeddings": True,
}
GEMMA4_VISION_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 16,
                          "num_attention_heads": 12, "num_key_value_heads": 12, "head_dim": 64, "patch_size": 16,
                          "position_embedding_size": 10 * 1024, "default_output_length": 280}


def gemma4(cfg: dict) -> Architecture:
    """Gemma 4 image-text checkpoints: the text model, a ViT tower (learned 2-D position table, unbiased patch
    projection, q/k norms, gated MLPs, four norms a layer) and a projection to the text width. The audio
    tower of the small checkpoints (E2B, E4B) is not modelled: those are refused."""
    if "text_config" not in cfg:
        return gemma4_text({**cfg, "model_type": "gemma4"})
    if cfg.get("audio_config"):
        raise SizingError("gemma4 checkpoints with an audio tower (audio_config: E2B, E4B) are not supported")
    text = {"torch_dtype": cfg.get("torch_dtype") or cfg.get("dtype"), **cfg["text_config"], "model_type": "gemma4"}
    if "tie_word_embeddings" in cfg:
        text.setdefault("tie_word_embeddings", cfg["tie_word_embeddings"])
    arch = gemma4_text(text)
    v = {**GEMMA4_VISION_DEFAULTS, **(cfg.get("vision_config") or {})}
    h, inter, n, patch = v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"], v["patch_size"]
    q, kv = v["num_attention_heads"] * v["head_dim"], v["num_key_value_heads"] * v["head_dim"]
    R = Role.VISION
    b = _Builder(arch.hidden_size, arch.num_layers, list(arch.tensors))
    b.add("vision.position_embedding_table", h, 2 * v["position_embedding_size"], 1, Shard.REPLICATED, R)
    b.add("vision.input_proj", 3 * patch * patch, h, 1, Shard.REPLICATED, R)
    b.add("vision.q_proj", h, q, n, Shard.COLUMN, R)
    b.add("vision.k_proj", h, kv, n, Shard.COLUMN, R)
    b.add("vision.v_proj", h, kv, n, Shard.COLUMN, R)
    b.add("vision.o_proj", q, h, n, Shard.ROW, R)
    b.add("vision.qk_norms", 1, v["head_dim"], 2 * n, Shard.REPLICATED, R)
    b.add("vision.gate_up", h, 2 * inter, n, Shard.COLUMN, R)
    b.add("vision.down", inter, h, n, Shard.ROW, R)
    b.add("vision.norms", 1, h, 4 * n, Shard.REPLICATED, R)
    b.add("embed_vision", h, arch.hidden_size, 1, Shard.REPLICATED, R)
    arch = replace(arch, tensors=tuple(b.tensors), quant=_quant(cfg) or arch.quant)
    arch.extras["mm_tokens_per_image"] = int(cfg.get("vision_soft_tokens_per_image") or v["default_output_length"])
    return arch


def phi(cfg: dict) -> Architecture:
    """Phi-1/2: parallel attention and MLP with biases everywhere, LayerNorm (weight and bias), an ungated MLP."""
    c = _common(cfg)
    layers, hidden = c["num_layers"], c["hidden_size"]
    tied = bool(cfg.get("tie_word_embeddings", False))
    b = _Builder(hidden, layers)
    b.add("embed_tokens", hidden, c["vocab_size"], 1, Shard.VOCAB, Role.EMBEDDING)
    if not tied:
        b.add("lm_head", hidden, c["vocab_size"], 1, Shard.VOCAB, Role.LM_HEAD)
        b.add("lm_head.bias", 1, c["vocab_size"], 1, Shard.VOCAB, Role.BIAS)
    b.add("final_layernorm", 1, 2 * hidden, 1, Shard.REPLICATED, Role.NORM)
    b.gqa(c["num_heads"], c["num_kv_heads"], c["head_dim"], qkv_bias=True, o_bias=True,
          qk_norm=bool(cfg.get("qk_layernorm")))
    inter = _int(cfg, "intermediate_size")
    b.add("mlp.fc1", hidden, inter, layers, Shard.COLUMN, Role.MLP)
    b.add("mlp.fc1.bias", 1, inter, layers, Shard.COLUMN, Role.BIAS)
    b.add("mlp.fc2", inter, hidden, layers, Shard.ROW, Role.MLP)
    b.add("mlp.fc2.bias", 1, hidden, layers, Shard.REPLICATED, Role.BIAS)
    b.layer_norms(2)  # input_layernorm weight and bias
    return Architecture(
        model_type="phi", tie_word_embeddings=tied, tensors=tuple(b.tensors),
        caches=_attention_caches(c, (None,) * layers), **c,
    )


def _deepseek(cfg: dict) -> Architecture:
    hidden, layers = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers")
    heads = _int(cfg, "num_attention_heads")
    tied = bool(cfg.get("tie_word_embeddings", False))
    q_lora = cfg.get("q_lora_rank")
    mla = MLA(
        q_lora_rank=int(q_lora) if q_lora else None,
        kv_lora_rank=_int(cfg, "kv_lora_rank"),
        qk_nope_head_dim=_int(cfg, "qk_nope_head_dim"),
        qk_rope_head_dim=_int(cfg, "qk_rope_head_dim"),
        v_head_dim=_int(cfg, "v_head_dim"),
    )
    qk_head = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    b = _Builder(hidden, layers)
    b.embeddings(_int(cfg, "vocab_size"), tied)
    if mla.q_lora_rank:
        b.add("q_a_proj", hidden, mla.q_lora_rank, layers, Shard.REPLICATED, Role.ATTENTION)
        b.add("q_a_layernorm", 1, mla.q_lora_rank, layers, Shard.REPLICATED, Role.NORM)
        b.add("q_b_proj", mla.q_lora_rank, heads * qk_head, layers, Shard.COLUMN, Role.ATTENTION)
    else:
        b.add("q_proj", hidden, heads * qk_head, layers, Shard.COLUMN, Role.ATTENTION)
    b.add("kv_a_proj_with_mqa", hidden, mla.kv_lora_rank + mla.qk_rope_head_dim, layers, Shard.REPLICATED, Role.ATTENTION)
    b.add("kv_a_layernorm", 1, mla.kv_lora_rank, layers, Shard.REPLICATED, Role.NORM)
    b.add("kv_b_proj", mla.kv_lora_rank, heads * (mla.qk_nope_head_dim + mla.v_head_dim), layers, Shard.COLUMN, Role.ATTENTION)
    b.add("o_proj", heads * mla.v_head_dim, hidden, layers, Shard.ROW, Role.ATTENTION)
    if cfg.get("attention_bias"):
        raise SizingError("DeepSeek MLA with attention_bias is not supported")

    experts = _int(cfg, "n_routed_experts", 0)
    first_dense = _int(cfg, "first_k_dense_replace", 0)
    freq = _int(cfg, "moe_layer_freq", 1) or 1
    sparse = [i for i in range(layers) if experts and i >= first_dense and i % freq == 0]
    n_sparse = len(sparse)
    b.gated_mlp(_int(cfg, "intermediate_size"), layers - n_sparse)
    expert_inter = _int(cfg, "moe_intermediate_size", 0)
    shared = expert_inter * _int(cfg, "n_shared_experts", 0)
    b.add("router", hidden, experts, n_sparse, Shard.REPLICATED, Role.ROUTER)
    b.gated_mlp(expert_inter, n_sparse * experts, Role.EXPERTS, "experts")
    b.gated_mlp(shared, n_sparse, Role.MLP, "shared_experts")
    b.layer_norms(2)
    moe = MoE(experts, _int(cfg, "num_experts_per_tok"), expert_inter, shared, n_sparse) if experts else None
    # vLLM's KV cache stores one latent per token: a single "head" of kv_lora_rank + rope dims.
    return Architecture(
        model_type=cfg["model_type"], hidden_size=hidden, num_layers=layers, num_heads=heads,
        num_kv_heads=1, head_dim=mla.kv_lora_rank + mla.qk_rope_head_dim, vocab_size=_int(cfg, "vocab_size"),
        tie_word_embeddings=tied, torch_dtype=_dtype(cfg),
        max_position_embeddings=_int(cfg, "max_position_embeddings", 2048), rotary_dim=mla.qk_rope_head_dim,
        tensors=tuple(b.tensors), mla=mla, moe=moe, quant=_quant(cfg),
        caches=(Attention(1, mla.kv_lora_rank + mla.qk_rope_head_dim, mla=True),) * layers,
    )


FAMILIES: dict[str, Callable[[dict], Architecture]] = {
    "llama": llama,
    "granite": llama,  # Llama with scalar multipliers (no extra weights)
    "mistral": mistral,
    "mistral3": mistral3,
    "ministral": mistral,  # Mistral with layer_types (sliding / full attention per layer)
    "ministral3": mistral,  # the text model of Ministral 3 (and Mistral3 checkpoints built on it)
    "mixtral": mixtral,
    "qwen2": qwen2,
    "qwen2_moe": qwen2_moe,
    "qwen3": qwen3,
    "qwen3_moe": qwen3_moe,
    "gemma2": gemma2,
    "gemma3": gemma3,
    "gemma3_text": gemma3_text,
    "gemma4": gemma4,
    "gemma4_text": gemma4_text,
    "glm4_moe": glm4_moe,
    "gpt_oss": gpt_oss,
    "llama4": llama4,
    "llama4_text": llama4_text,
    "phi": phi,
    "phi3": phi3,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
}

from . import hybrids as _hybrids  # noqa: E402  (the hybrid families build on the blocks above)

FAMILIES.update(_hybrids.FAMILIES)


# Where a Hub model's safetensors parameter counts per dtype ride along with its config.json (catalog._from_hub).
SAFETENSORS_KEY = "_safetensors_parameters"


def from_config(cfg: Any, name: str = "") -> Architecture:
    """Build the architecture of a Hugging Face config.json (already parsed)."""
    if not isinstance(cfg, dict):
        raise SizingError("config.json must hold a JSON object")
    model_type = cfg.get("model_type")
    if not model_type:
        raise SizingError("config.json has no 'model_type'")
    builder = FAMILIES.get(str(model_type))
    if builder is None:
        raise SizingError(f"model_type '{model_type}' is not supported; supported: {', '.join(sorted(FAMILIES))}")
    try:
        arch = builder(cfg)
    except (TypeError, KeyError, ValueError) as exc:
        if isinstance(exc, SizingError):
            raise
        raise SizingError(f"config.json is malformed for a {model_type} model: {exc}") from None
    object.__setattr__(arch, "name", name)
    arch.extras["context_window"] = _context_window(cfg, arch.max_position_embeddings)
    if cfg.get(SAFETENSORS_KEY):
        arch.extras["safetensors_parameters"] = dict(cfg[SAFETENSORS_KEY])
    return arch


def _context_window(cfg: dict, max_positions: int) -> int:
    # vLLM _get_and_verify_max_len: rope types other than llama3/longrope/su/mrope multiply the derived
    # length by the factor when the config states the original length (YaRN, dynamic). DeepSeek's YaRN
    # configs already give the stretched max_position_embeddings, so vLLM keys on the original length.
    rope = cfg.get("rope_scaling") or {}
    kind = rope.get("rope_type") or rope.get("type")
    if kind in (None, "default", "llama3", "longrope", "su", "mrope", "linear"):
        return max_positions
    original = rope.get("original_max_position_embeddings")
    factor = float(rope.get("factor", 1.0))
    if original:
        return max(max_positions, int(original * factor))
    return int(max_positions * factor)
