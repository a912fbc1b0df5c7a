"""Host RAM one model-server pod needs, from how its engine loads the weights (sizing/data/host_memory.yaml).

NVIDIA: vLLM reads safetensors through mmap, one tensor at a time, so the checkpoint lives in the page cache, which
the kernel reclaims under the pod's memory limit; the pod needs its processes, one tensor's copy per rank, /dev/shm
and a small page-cache working set. Neuron: NxD Inference loads and shards the whole state dict on the host to
compile it, so there the weights count, several times (engine.yaml neuron.host_memory_weight_factor).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any


from . import catalog
from .architecture import Architecture
from .catalog import GIB
from .neuron import neuron_facts
from .weights import resolve_format, tensor_bytes


@functools.cache
def host_memory_facts() -> dict[str, Any]:
    return catalog.load_yaml("host_memory.yaml")


@dataclass(frozen=True)
class HostMemory:
    """GiB of host RAM a pod needs, by what holds it."""

    processes_gib: float
    loading_gib: float  # anonymous copies of tensors in flight (GPU) or the host-side state dict (Neuron)
    page_cache_gib: float
    shm_gib: float

    @property
    def total_gib(self) -> float:
        return self.processes_gib + self.loading_gib + self.page_cache_gib + self.shm_gib

    def describe(self) -> str:
        parts = [("processes", self.processes_gib), ("loading", self.loading_gib), ("page cache", self.page_cache_gib),
                 ("/dev/shm", self.shm_gib)]
        return " + ".join(f"{name} {gib:.1f}" for name, gib in parts if gib)


def largest_tensor_bytes(arch: Architecture) -> float:
    """The largest single tensor of the checkpoint as stored (experts count one expert each)."""
    fmt = resolve_format(arch, arch.torch_dtype)
    return max(tensor_bytes(t, fmt) / t.count for t in arch.tensors)


def gpu_host_memory(arch: Architecture, tp: int) -> HostMemory:
    """vLLM on `tp` GPUs: the API server and the EngineCore, plus one worker process per GPU at TP > 1 (at TP 1 the
    worker runs inside the EngineCore); each rank holds at most one tensor outside the page cache."""
    f = host_memory_facts()
    p = f["process_gib"]
    processes = p["api_server"] + p["engine_core"] + tp * p["gpu_worker"]
    shm = 0.0 if tp == 1 else f["shm_gib"]["base"] + tp * f["shm_gib"]["per_worker"]
    return HostMemory(processes, tp * largest_tensor_bytes(arch) / GIB, f["page_cache_gib"], shm)


def neuron_host_memory(checkpoint_bytes: float, shm_gib: float) -> HostMemory:
    """vllm-neuron: the state dict loaded, sharded and compiled on the host; /dev/shm counted at its sizeLimit."""
    loading = checkpoint_bytes / GIB * neuron_facts()["host_memory_weight_factor"]
    return HostMemory(host_memory_facts()["neuron_process_gib"], loading, 0.0, shm_gib)
