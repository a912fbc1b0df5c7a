"""The facts the planner stands on, loaded from the data files beside this module.

Accelerators, instance types (with allocatable resources and dated prices), vLLM engine facts per version,
and the built-in catalog of model configs. Each data file names its sources and dates in its header.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from .architecture import SAFETENSORS_KEY
from .errors import SizingError

DATA = Path(__file__).parent / "data"
MODELS = DATA / "models"
GIB = 1024**3
INTERCONNECTS = ("none", "nvlink", "pcie", "neuron")


@dataclass(frozen=True)
class Accelerator:
    key: str
    name: str
    vendor: str  # nvidia | neuron
    memory_gib: float  # per device, as the EC2 API lists it
    usable_gib: float  # what the runtime can allocate: CUDA's total_memory, or HBM for Neuron
    bandwidth_gbps: float
    bf16_tflops: float
    bf16: bool = True
    fp8: bool = False
    fp8_tflops: float | None = None  # dense fp8 tensor-core peak, where the hardware has one
    cores: int = 1  # NeuronCores per device (Neuron); 1 for GPUs
    compute_capability: int | None = None  # NVIDIA, x10 (8.9 -> 89); None for Neuron

    @property
    def is_neuron(self) -> bool:
        return self.vendor == "neuron"


@dataclass(frozen=True)
class InstanceType:
    name: str
    accelerator: Accelerator
    count: int
    vcpu: int
    memory_gib: int
    alloc_cpu_m: int
    alloc_memory_mi: int
    hourly_usd: float
    interconnect: str = "none"  # none | nvlink | pcie | neuron (instances.yaml header)
    p2p: bool | None = None  # PCIe only: CUDA peer-to-peer between the GPUs

    @property
    def family(self) -> str:
        return self.name.split(".")[0]


def load_yaml(name: str) -> Any:
    """A data file of sizing/data, parsed."""
    with open(DATA / name, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@functools.cache
def accelerators() -> dict[str, Accelerator]:
    return {key: Accelerator(key=key, **spec) for key, spec in load_yaml("accelerators.yaml")["accelerators"].items()}


@functools.cache
def instances() -> dict[str, InstanceType]:
    accels = accelerators()
    out = {}
    for name, spec in load_yaml("instances.yaml")["instances"].items():
        spec = dict(spec)
        spec["accelerator"] = accels[spec["accelerator"]]
        if spec.get("interconnect") not in INTERCONNECTS:
            raise ValueError(f"instances.yaml {name}: interconnect {spec.get('interconnect')!r} is not one of {INTERCONNECTS}")
        out[name] = InstanceType(name=name, **spec)
    return out


@functools.cache
def interconnect(accelerator_key: str) -> str:
    """How the GPUs of one instance carrying this accelerator talk (instances.yaml): each accelerator AWS sells comes
    in one kind of multi-GPU instance (PCIe cards in g*, NVSwitch in p*). A GPU the catalog does not sell counts as
    NVLink, the larger tensor-parallel overhead."""
    kinds = {i.interconnect for i in instances().values() if i.accelerator.key == accelerator_key and i.count > 1}
    return kinds.pop() if len(kinds) == 1 else "nvlink"


@functools.cache
def prices_as_of() -> str:
    return str(load_yaml("instances.yaml")["prices_as_of"])


@functools.cache
def engine_facts() -> dict[str, Any]:
    return load_yaml("engine.yaml")


def custom_gpu(usable_gib: float, compute_capability: float) -> Accelerator:
    """Any other NVIDIA GPU, from what CUDA reports for it (torch.cuda.mem_get_info()[1], in GiB) and its compute
    capability (8.9 -> 89): enough for vLLM's memory budget; bandwidth and TFLOPS unknown (0)."""
    cc = round(compute_capability * 10)
    return Accelerator(key=f"gpu-{usable_gib:g}gib", name=f"a GPU with {usable_gib:g} GiB (compute {compute_capability:g})",
                       vendor="nvidia", memory_gib=usable_gib, usable_gib=usable_gib, bandwidth_gbps=0, bf16_tflops=0,
                       bf16=cc >= 80, fp8=cc >= 89, compute_capability=cc)


def accelerator(key: str) -> Accelerator:
    accels = accelerators()
    if key.lower() not in accels:
        raise SizingError(f"unknown accelerator '{key}'; known: {', '.join(accels)}")
    return accels[key.lower()]


def instance(name: str) -> InstanceType:
    types = instances()
    if name not in types:
        families = sorted({t.family for t in types.values()})
        raise SizingError(f"unknown instance type '{name}' («instance_type»); the catalog has the families {', '.join(families)}",
                          key="instance_type")
    return types[name]


# --- models ------------------------------------------------------------------------------------------------


def _model_file(model_id: str) -> str:
    return model_id.replace("/", "--") + ".json"


@functools.cache
def _aliases() -> dict[str, str]:
    data = load_yaml("models/aliases.yaml") or {}
    return {k.lower(): v for k, v in (data.get("aliases") or {}).items()}


@functools.cache
def catalog_ids() -> dict[str, Path]:
    """Built-in model id, as the Hub spells it (the file name, or the alias) -> its config.json."""
    files = {p.stem.replace("--", "/"): p for p in MODELS.glob("*.json")}
    by_lower = {k.lower(): p for k, p in files.items()}
    data = load_yaml("models/aliases.yaml") or {}
    for alias, target in (data.get("aliases") or {}).items():
        if target.lower() in by_lower:
            files.setdefault(alias, by_lower[target.lower()])
    return files


@functools.cache
def catalog_models() -> dict[str, Path]:
    """Built-in model id (lower-case) -> its config.json, aliases included."""
    files = {p.stem.replace("--", "/").lower(): p for p in MODELS.glob("*.json")}
    for alias, target in _aliases().items():
        if target.lower() in files:
            files.setdefault(alias, files[target.lower()])
    return files


def load_config_file(path: str | os.PathLike) -> dict:
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SizingError(f"config file {p} does not exist") from None
    except OSError as exc:
        raise SizingError(f"cannot read config file {p}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SizingError(f"{p} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise SizingError(f"{p} must hold a JSON object, not {type(data).__name__}")
    return data


def _from_hub(model_id: str) -> dict:
    """Fetch config.json from the Hugging Face Hub (HF_TOKEN is used for gated repos)."""
    hint = (f"set «config» to a local config.json, or use one of the {len(catalog_ids())} built-in models "
            "(python -m sizing --list-models)")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise SizingError(f"model '{model_id}' is not in the built-in catalog and HF_HUB_OFFLINE is set; {hint}")
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # its retry warnings would break the one-line error contract
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:  # fail at once without a network, instead of after the client's retries and back-off
        socket.getaddrinfo(host, 443)
    except OSError:
        raise SizingError(f"model '{model_id}' is not in the built-in catalog and {host} cannot be reached (offline?); {hint}") from None
    try:
        path = hf_hub_download(model_id, "config.json")
        counts = _safetensors_parameters(model_id, load_config_file(path))
    except RepositoryNotFoundError:
        raise SizingError(f"model '{model_id}' does not exist on the Hugging Face Hub, or is gated or private (set "
                          "HF_TOKEN to a token that may read it)") from None
    except LocalEntryNotFoundError:  # no connection: nothing is known about the model, so say offline
        raise SizingError(f"model '{model_id}' is not in the built-in catalog and {host} cannot be reached "
                          f"(offline?); {hint}") from None
    except (HfHubHTTPError, OSError) as exc:
        reason = type(exc).__name__
        raise SizingError(f"model '{model_id}' is not in the built-in catalog and the Hub did not answer ({reason}); "
                          f"{hint}") from None
    cfg = load_config_file(path)
    if counts:
        cfg[SAFETENSORS_KEY] = counts
    return cfg


def _safetensors_parameters(model_id: str, cfg: dict) -> dict[str, int] | None:
    """The checkpoint's exact parameter counts per dtype from its safetensors headers (nothing is downloaded but
    the headers), of the tensors vLLM loads; None for a repo without safetensors, whose weights then come from
    the architecture."""
    from huggingface_hub import get_safetensors_metadata
    from huggingface_hub.errors import NotASafetensorsRepoError

    try:
        meta = get_safetensors_metadata(model_id)
    except NotASafetensorsRepoError:
        return None
    return served_parameter_counts(meta, cfg)


_MTP = re.compile(r"(^|\.)mtp\.")
_LAYER = re.compile(r"(^|\.)layers\.(\d+)\.")


def served_parameter_counts(meta: Any, cfg: dict) -> dict[str, int]:
    """Per-dtype counts of a checkpoint's tensors less its multi-token-prediction layers, which vLLM loads only
    as a speculative drafter: `mtp.*` (Qwen3-Next, Qwen 3.5, Nemotron-H) and, with num_nextn_predict_layers,
    decoder layers numbered from num_hidden_layers (DeepSeek-V3, GLM-4.5)."""
    text = cfg.get("text_config") or cfg
    extra_from = int(text.get("num_hidden_layers") or 0) if text.get("num_nextn_predict_layers") else None
    counts: dict[str, int] = {}
    for file in meta.files_metadata.values():
        for name, tensor in file.tensors.items():
            layer = _LAYER.search(name)
            if _MTP.search(name) or (extra_from is not None and layer and int(layer.group(2)) >= extra_from):
                continue
            counts[tensor.dtype] = counts.get(tensor.dtype, 0) + tensor.parameter_count
    return counts


def load_model_config(model_id: str) -> tuple[dict, str]:
    """The config.json of a model id and where it came from ('catalog' or 'hub')."""
    if not model_id or "/" not in model_id:
        raise SizingError(f"model id '{model_id}' must look like org/name (e.g. Qwen/Qwen3-1.7B)")
    path = catalog_models().get(model_id.lower())
    if path is not None:
        return load_config_file(path), "catalog"
    return _from_hub(model_id), "hub"
