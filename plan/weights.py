"""Where a model's weights come from: the stack's S3 weights cache (filled once per model revision by the fill Job,
streamed by vLLM with --load-format runai_streamer) or the Hugging Face Hub (every server downloads at start).

The cache is for vLLM's own server (GPUs). Ray Serve on Neuron loads from the Hub: its start is dominated by the
compile, which the Neuron compile cache addresses, and vllm-neuron's loader is not the Run:ai streamer.
"""

from __future__ import annotations

from dataclasses import dataclass

BUCKET_ENV = "WEIGHTS_BUCKET"  # the container variable holding the bucket name; args name it as $(WEIGHTS_BUCKET)
LOAD_FORMAT = "runai_streamer"  # vLLM's loader for s3:// (vllm/model_executor/model_loader/runai_streamer_loader.py)
MODELS_PREFIX = "models"


@dataclass(frozen=True)
class WeightsPlan:
    source: str  # "s3" (the stack's weights cache) | "hub"
    model: str  # the Hub id
    revision: str

    @property
    def prefix(self) -> str:
        """The model revision's key prefix in the bucket: the fill Job writes there, the server's role reads only it."""
        return f"{MODELS_PREFIX}/{self.model}/{self.revision}"

    @property
    def cached(self) -> bool:
        return self.source == "s3"

    def model_args(self) -> tuple[str, ...]:
        """The `vllm serve` arguments that say what to load: an s3:// path (Kubernetes expands $(WEIGHTS_BUCKET)
        from the container's env) served under the Hub id, or the Hub id itself."""
        if self.cached:
            return (f"s3://$({BUCKET_ENV})/{self.prefix}", "--load-format", LOAD_FORMAT,
                    "--served-model-name", self.model)
        return (self.model,) + (("--revision", self.revision) if self.revision != "main" else ())


def weights_plan(model: str, revision: str, server: str, cache_enabled: bool) -> WeightsPlan:
    return WeightsPlan("s3" if cache_enabled and server == "vllm" else "hub", model, revision)
