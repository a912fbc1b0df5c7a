"""Published sizing rules of thumb, computed as written, to show beside vLLM's own accounting. They come from the
deployment guides this project started from (../shared/seeds in the development tree; users see only the names):

"20% overhead" (an EKS guide's Llama-3.2-1B on g5): memory = parameters x bytes x 1.2.
"25% activations + KV" (an EKS guide's Qwen3-1.7B on g6): memory = weights + 25% of weights + KV, with KV per token
= 2 x bytes x layers x hidden_size (no grouped-query attention) x context x concurrent requests.
A SageMaker guide (Llama-2-13B on g5.12xlarge) uses the same KV-per-token formula with 2-3 GB of further overhead.
"""

from __future__ import annotations

from dataclasses import dataclass

from .architecture import Architecture

GIB = 1024**3


@dataclass(frozen=True)
class RuleOfThumb:
    name: str
    formula: str
    kv_bytes_per_token: int | None
    total_gib: float


def seed_kv_bytes_per_token(arch: Architecture, dtype_bytes: float) -> int:
    """The seeds' KV per token: 2 x bytes x layers x hidden_size, ignoring GQA and MLA."""
    return int(2 * dtype_bytes * arch.num_layers * arch.hidden_size)


def true_kv_bytes_per_token(arch: Architecture, kv_bytes: float) -> int:
    """KV per token for the whole model at TP 1, as vLLM stores it (latent for MLA, KV heads for GQA)."""
    factor = 1 if arch.mla else 2
    return int(factor * arch.num_layers * arch.num_kv_heads * arch.head_dim * kv_bytes)


def seed_estimates(arch: Architecture, dtype_bytes: float, max_model_len: int, concurrency: int) -> list[RuleOfThumb]:
    weights = arch.parameters * dtype_bytes
    kv_token = seed_kv_bytes_per_token(arch, dtype_bytes)
    kv = kv_token * max_model_len * concurrency
    return [
        RuleOfThumb("20% overhead", "parameters x bytes x 1.2", None, weights * 1.2 / GIB),
        RuleOfThumb(
            "25% activations + KV",
            "weights x 1.25 + 2 x bytes x layers x hidden x context x requests",
            kv_token,
            (weights * 1.25 + kv) / GIB,
        ),
    ]
