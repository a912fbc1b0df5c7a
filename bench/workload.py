"""The benchmark's workload (seed 004's by default), its concurrency sweep, and inference-perf's config for it.

Pure data: no Pulumi, no Kubernetes client, no network. The same config drives a local run (`--url`) and the
in-cluster Job, so both measure the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The load generator, pinned: the PyPI package (requirements-bench.txt) and the image the Job runs are one version.
INFERENCE_PERF_VERSION = "0.7.0"
INFERENCE_PERF_IMAGE = f"quay.io/inference-perf/inference-perf:v{INFERENCE_PERF_VERSION}"

# Seed 004 (LLMPerf's token_benchmark_ray.py): 512 +- 20 prompt tokens, 245 +- 20 output tokens, 8 requests per
# virtual user, concurrency 1, 2, 4, 8, 16 ...
SEED_INPUT_TOKENS = (512, 20)
SEED_OUTPUT_TOKENS = (245, 20)
SEED_REQUESTS_PER_USER = 8
WARMUP_REQUESTS = 2  # one request at concurrency 1 before the sweep; reported apart, not in the table

STAGE_SEPARATION_S = 1.0


@dataclass(frozen=True)
class TokenDistribution:
    """A normal distribution of token counts, clamped to mean +- 4 standard deviations (and at least 1)."""

    mean: int
    std: int = 0

    def __post_init__(self) -> None:
        if self.mean < 1 or self.std < 0:
            raise ValueError(f"token counts need mean >= 1 and std >= 0, got {self.mean} +- {self.std}")

    @property
    def low(self) -> int:
        return max(1, self.mean - 4 * self.std)

    @property
    def high(self) -> int:
        return self.mean + 4 * self.std

    def config(self) -> dict[str, Any]:
        if self.std == 0:
            return {"type": "fixed", "mean": self.mean, "std_dev": 0, "min": self.mean, "max": self.mean}
        return {"type": "normal", "mean": self.mean, "std_dev": self.std, "min": self.low, "max": self.high}

    def __str__(self) -> str:
        return f"{self.mean} +- {self.std}" if self.std else str(self.mean)


@dataclass(frozen=True)
class Workload:
    input_tokens: TokenDistribution = field(default_factory=lambda: TokenDistribution(*SEED_INPUT_TOKENS))
    output_tokens: TokenDistribution = field(default_factory=lambda: TokenDistribution(*SEED_OUTPUT_TOKENS))
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16)
    requests_per_level: int | None = None  # None: seed 004's 8 per concurrent user
    warmup_requests: int = WARMUP_REQUESTS
    api: str = "completion"  # completion | chat

    def __post_init__(self) -> None:
        if not self.concurrency or any(c < 1 for c in self.concurrency):
            raise ValueError(f"concurrency levels must be positive integers, got {self.concurrency}")
        if list(self.concurrency) != sorted(set(self.concurrency)):
            raise ValueError(f"concurrency levels must be increasing and distinct, got {self.concurrency}")
        if self.requests_per_level is not None and self.requests_per_level < 1:
            raise ValueError("requests per level must be at least 1")
        if self.api not in ("completion", "chat"):
            raise ValueError(f"api must be completion or chat, got {self.api}")

    def requests_at(self, concurrency: int) -> int:
        n = self.requests_per_level or SEED_REQUESTS_PER_USER * concurrency
        return max(n, concurrency)  # at least one request per concurrent user, or the level never reaches c

    @property
    def total_requests(self) -> int:
        return self.warmup_requests + sum(self.requests_at(c) for c in self.concurrency)

    def stages(self) -> list[dict[str, int]]:
        warm = [{"num_requests": self.warmup_requests, "concurrency_level": 1}] if self.warmup_requests else []
        return warm + [{"num_requests": self.requests_at(c), "concurrency_level": c} for c in self.concurrency]

    def level_of_stage(self, stage: int) -> int | None:
        """The concurrency a stage index of inference-perf's report measured; None for the warm-up stage."""
        if self.warmup_requests:
            stage -= 1
        return self.concurrency[stage] if 0 <= stage < len(self.concurrency) else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": {"mean": self.input_tokens.mean, "std": self.input_tokens.std},
            "output_tokens": {"mean": self.output_tokens.mean, "std": self.output_tokens.std},
            "concurrency": list(self.concurrency),
            "requests": {str(c): self.requests_at(c) for c in self.concurrency},
            "warmup_requests": self.warmup_requests,
            "api": self.api,
        }


def sweep(predicted: int, cap: int | None = None) -> tuple[int, ...]:
    """Concurrency levels 1, 2, 4, 8 ... up to one doubling past the predicted concurrency, so the knee of the
    throughput curve can show on either side of it; the predicted value itself is a level. `cap` (the server's
    max_num_seqs over all replicas; on Neuron, the compiled batch) bounds the sweep: past it requests only queue."""
    if predicted < 1:
        raise ValueError(f"predicted concurrency must be >= 1, got {predicted}")
    top = 2 * predicted if cap is None else min(2 * predicted, cap)
    levels = {1 << k for k in range(top.bit_length()) if 1 << k <= top}
    if cap is None or predicted <= cap:
        levels.add(predicted)
    return tuple(sorted(levels))


def base_url(openai_url: str) -> str:
    """inference-perf takes the server root and appends /v1/...; users give the OpenAI base URL (.../v1)."""
    url = openai_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


CHAT_OUTPUT_TOKENS = 30  # inference-perf 0.7.0's chat generator: its client's default max_tokens, not configurable


def data_config(workload: Workload) -> dict[str, Any]:
    """completion: text cut from inference-perf's Shakespeare corpus to exact token counts from both distributions
    (LLMPerf, seed 004's tool, samples Shakespeare's sonnets too). chat: inference-perf 0.7.0 builds chat requests
    only in its multimodal generator (here with no media): prompts of about the sampled length (random token ids,
    not re-tokenized), and every output max_tokens=30, whatever --output-tokens says."""
    if workload.api == "completion":
        return {"type": "synthetic", "input_distribution": workload.input_tokens.config(),
                "output_distribution": workload.output_tokens.config()}
    # output_distribution is required by the config check but not used by that generator.
    return {"type": "synthetic", "multimodal": {}, "input_distribution": workload.input_tokens.config(),
            "output_distribution": workload.output_tokens.config()}


# inference-perf 0.7.0's per-request timeout when none is set: aiohttp's default ClientTimeout, total=300 s
# (client/modelserver/openai_client.py passes aiohttp.helpers.sentinel; aiohttp DEFAULT_TIMEOUT, client.py).
REQUEST_TIMEOUT_S = 300


def inference_perf_config(workload: Workload, *, url: str, model_name: str | None = None,
                          tokenizer: str | None = None, report_dir: str = "reports",
                          request_timeout_s: int = REQUEST_TIMEOUT_S) -> dict[str, Any]:
    """inference-perf 0.7.0's config (inference_perf/config/config.py), one stage per concurrency level.

    `model_name` None: inference-perf asks the server's /v1/models. `tokenizer` None: the served model name, which
    for vLLM is the Hugging Face id (downloaded with HF_TOKEN) or the local checkpoint path. `request_timeout_s`: one
    request, whole (the plan adds the wake-up of a model that scales to zero: the warm-up request waits it out)."""
    server: dict[str, Any] = {"type": "vllm", "base_url": base_url(url), "ignore_eos": True}
    if model_name:
        server["model_name"] = model_name
    cfg: dict[str, Any] = {
        "api": {"type": workload.api, "streaming": True},
        "data": data_config(workload),
        "load": {
            "type": "concurrent",
            "interval": STAGE_SEPARATION_S,
            "stages": workload.stages(),
            "num_workers": 1,
            "worker_max_concurrency": max(workload.concurrency) + 1,
            "request_timeout": request_timeout_s,
        },
        "server": server,
        "storage": {"local_storage": {"path": report_dir}},
        "report": {"request_lifecycle": {"summary": True, "per_stage": True, "per_request": False}},
    }
    if tokenizer:
        cfg["tokenizer"] = {"pretrained_model_name_or_path": tokenizer}
    return cfg
