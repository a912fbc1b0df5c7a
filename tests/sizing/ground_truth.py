"""Independent numbers for the sizing tests: vLLM 0.19 log lines and transformers parameter counts."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

from sizing.catalog import catalog_models, load_config_file

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
LOGS = DATA / "vllm_logs"


@functools.cache
def runs() -> list[dict]:
    return yaml.safe_load((LOGS / "h100_v0_19.yaml").read_text())


@functools.cache
def _quantized() -> dict:
    return {k.lower(): v for k, v in yaml.safe_load((LOGS / "quantized_checkpoints.yaml").read_text()).items()}


def config_path(model_id: str) -> Path | None:
    local = LOGS / "configs" / (model_id.replace("/", "--") + ".json")
    if local.exists():
        return local
    return catalog_models().get(model_id.lower())


# The quantization_config of the RedHatAI/neuralmagic checkpoints (compressed-tensors, as their config.json
# files carry it; model cards "FP8-dynamic", "W8A8", "W4A16 group 128"), by the format quantized_checkpoints.yaml names.
_CHECKPOINT_QUANT = {
    "fp8": {"quant_method": "compressed-tensors", "config_groups": {"group_0": {
        "weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}}},
    "int8": {"quant_method": "compressed-tensors", "config_groups": {"group_0": {
        "weights": {"num_bits": 8, "type": "int", "strategy": "channel"}}}},
    "int4": {"quant_method": "compressed-tensors", "config_groups": {"group_0": {
        "weights": {"num_bits": 4, "type": "int", "group_size": 128, "strategy": "group"}}}},
}


def config_for(model_id: str) -> tuple[dict, str | None] | None:
    """The config (a quantized checkpoint's: its base's architecture plus its quantization_config) and the runtime
    quantization (None here: a quantized checkpoint is sized as what it is), or None when we hold no config."""
    quant = _quantized().get(model_id.lower())
    if quant:
        path = config_path(quant["base"])
        if not path:
            return None
        return {**load_config_file(path), "quantization_config": _CHECKPOINT_QUANT[quant["quantization"]]}, None
    path = config_path(model_id)
    return (load_config_file(path), None) if path else None


def transformers_counts() -> dict[Path, dict]:
    """config path -> counts recorded from transformers (tools/count_params_with_transformers.py)."""
    out = {}
    for counts_file, folder in (
        (DATA / "transformers_param_counts.yaml", ROOT / "sizing" / "data" / "models"),
        (DATA / "transformers_param_counts_hybrids.yaml", ROOT / "sizing" / "data" / "models"),
        (LOGS / "configs" / "transformers_param_counts.yaml", LOGS / "configs"),
    ):
        for name, entry in yaml.safe_load(counts_file.read_text()).items():
            out[folder / name] = entry
    return out
