"""The cold-start budget of one model: seconds from nothing to the first token, per phase (node launch, image pull,
weight load by source, engine start or Neuron compile), each rate from plan/data/cold_start.yaml with its source.

It answers two questions: how long a wake-up from zero replicas keeps the first request waiting (the KEDA HTTP add-on's
interceptor, the chat UI and the benchmark wait that long), and how long the startup probe allows a starting server
(the load and engine start, with a margin; the node and the image come before the container starts).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).with_name("data") / "cold_start.yaml"
GB = 1e9
GIB = 2**30


@cache
def rates() -> dict[str, Any]:
    return yaml.safe_load(DATA.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class ColdStart:
    node_launch_s: int
    image_pull_s: int
    image_cached: bool  # the image already on the node (nothing does that yet: every new node pulls)
    image_pull_mode: str  # "parallel" (SOCI parallel pull, nodeadm FastImagePull) | "sequential" (containerd's)
    weight_source: str  # "s3" (the weights cache, Run:ai streamer) | "hub"
    weight_load_s: dict[str, int]  # by source: what the other source would take, for comparison
    engine_start_s: int  # vLLM: profiling, torch.compile, CUDA graphs; Neuron: the compile
    compile_cached: bool | None  # Neuron: compiled artifacts from the compile cache; None on GPUs
    startup_probe_s: int  # what the server's startup probe allows (load and engine start, with the margin)
    total_s: int  # nothing to the first token: node, image, load, engine start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _seconds(gib: float, gb_per_s: float) -> int:
    return math.ceil(gib * GIB / GB / gb_per_s)


def parallel_pull(vcpu: int, memory_gib: float) -> bool:
    """Whether nodeadm turns on the parallel pull on this instance type (it ignores the feature gate on small ones)."""
    p = rates()["parallel_pull"]
    return vcpu >= p["min_vcpu"] and memory_gib >= p["min_memory_gib"]


def cold_start(vendor: str, server: str, checkpoint_gib: float, tensor_parallel: int, weight_source: str,
               vcpu: int, memory_gib: float) -> ColdStart:
    """The budget on an accelerator node of `vcpu` and `memory_gib` (whose node class asks for the parallel pull)."""
    r = rates()
    image = "neuron" if vendor == "neuron" else "vllm"
    sequential = r["image_gb"][image]["value"] / r["image_pull_gb_per_s"]["value"]
    parallel = parallel_pull(vcpu, memory_gib)
    saved = r["parallel_pull"]["time_saved"]["value"] if parallel else 0.0
    image_pull = math.ceil(sequential * (1 - saved))
    sources = ("s3", "hub") if server == "vllm" else ("hub",)  # the cache serves vLLM's own server (plan/weights.py)
    load = {s: _seconds(checkpoint_gib, r["weight_load_gb_per_s"][s]["value"]) for s in sources}
    if vendor == "neuron":
        engine, compiled = r["neuron_compile_s"]["uncached"]["value"], False
    else:
        engine, compiled = r["engine_start_s"]["tp1" if tensor_parallel == 1 else "tp_multi"], None
    probe = math.ceil(r["startup_probe_margin"] * (load[weight_source] + engine))
    node = r["node_launch_s"]["value"]
    return ColdStart(node_launch_s=node, image_pull_s=image_pull, image_cached=False,
                     image_pull_mode="parallel" if parallel else "sequential", weight_source=weight_source,
                     weight_load_s=load, engine_start_s=engine, compile_cached=compiled, startup_probe_s=probe,
                     total_s=node + image_pull + load[weight_source] + engine)
