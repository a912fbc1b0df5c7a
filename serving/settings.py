"""The serve app's settings and the one set of environment-variable names that carries them.

components/ray_service.py writes these variables from the sizing plan; serving/ray_app.py reads them in the pod.
Both use this module (standard library only, so the Pulumi program can import it), so a name cannot differ
between the manifest and the code that reads it.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Mapping

PREFIX = "LLM_EKS_"
# A Hub id is downloaded here (one folder per id) and vLLM loads the local copy: the pod's /data volume is the one
# the disk plan sizes, and vllm-neuron, given a Hub id instead of a path, writes a float32 copy under ./local-models.
DEFAULT_DOWNLOAD_DIR = "/data/models"


@dataclass(frozen=True)
class EngineSettings:
    model: str  # the Hugging Face id the engine loads
    served_model_name: str  # the `model` clients send (the Hugging Face id, as vLLM's own server uses)
    max_model_len: int
    max_num_seqs: int  # Neuron: the compiled batch
    tensor_parallel_size: int  # NeuronCores
    dtype: str
    block_size: int  # Neuron without prefix caching: one block of max_model_len per sequence
    enable_prefix_caching: bool = False
    download_dir: str = DEFAULT_DOWNLOAD_DIR  # where a Hub id's checkpoint goes before vLLM loads it (a path: used as is)


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


ENV_NAMES = {f.name: env_name(f.name) for f in fields(EngineSettings)}


def to_env(settings: EngineSettings) -> dict[str, str]:
    out = {}
    for f in fields(EngineSettings):
        value = getattr(settings, f.name)
        out[ENV_NAMES[f.name]] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def from_env(env: Mapping[str, str]) -> EngineSettings:
    """Settings from the environment; a missing or malformed variable is one clear error naming it."""
    values = {}
    for f in fields(EngineSettings):
        name = ENV_NAMES[f.name]
        raw = env.get(name)
        if raw is None:
            if f.default is not MISSING:
                continue
            raise ValueError(f"environment variable {name} is not set")
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        if kind == "int":
            try:
                values[f.name] = int(raw)
            except ValueError:
                raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None
            if values[f.name] <= 0:
                raise ValueError(f"environment variable {name} must be positive, got {raw!r}")
        elif kind == "bool":
            if raw.lower() not in ("true", "false"):
                raise ValueError(f"environment variable {name} must be true or false, got {raw!r}")
            values[f.name] = raw.lower() == "true"
        else:
            values[f.name] = raw
    return EngineSettings(**values)
