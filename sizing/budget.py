"""One interface over the vendors' memory budgets, and each vendor's rules for the search.

The planner's search never asks which vendor it holds: a budget (GpuBudget, sizing/memory.py; NeuronBudget,
sizing/neuron.py) answers the `Budget` questions, and a vendor's `VendorRules` says which tensor-parallel degrees an
instance offers, what refuses the model outright on it, and how to budget one replica. A new vendor is one more
`VendorRules` and one more budget class, not a branch in the search.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from . import catalog
from .architecture import Architecture
from .catalog import InstanceType
from .memory import GpuBudget, facts_for, gpu_budget, gpu_class
from .neuron import neuron_budget, neuron_facts, neuron_unsupported

if TYPE_CHECKING:
    from .plans import Workload


class Budget(Protocol):
    """What the planner reads off one replica's budget (per GPU, or per NeuronCore), whatever the vendor."""

    vendor: ClassVar[str]  # nvidia | neuron
    unit: ClassVar[str]  # what one rank is called: GPU | NeuronCore
    accelerator: str
    vllm_version: str
    tensor_parallel_size: int
    max_model_len: int
    max_num_seqs: int  # the batch the engine is given
    dtype: str
    weight_format: str
    kv_cache_tokens: int
    kv_bytes_per_token: int
    kv_cache_gib: float
    max_concurrency: float  # full-length requests the KV cache holds at once
    gpu_memory_utilization: float | None  # None where the vendor has no such knob
    vllm_quantization: str | None
    estimated_max_model_len: int | None  # the longest request that fits, where the engine reports one

    @property
    def ok(self) -> bool: ...

    def problem(self) -> str | None: ...

    def shortfall_gib(self) -> float: ...

    def shortfall_for(self, share: int) -> float: ...

    def replica_gib(self, share: int) -> float: ...

    def engine_args(self) -> list[str]: ...

    def describe(self, accelerator_name: str, share: int, host_needed_gib: float) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


class VendorRules(Protocol):
    vendor: ClassVar[str]

    def tp_options(self, w: Workload, inst: InstanceType) -> list[int]:
        """Tensor-parallel degrees one replica can use on `inst` (before a pinned degree filters them)."""
        ...

    def refusal(self, w: Workload, inst: InstanceType) -> str | None:
        """Why no replica of the model can run on `inst` at any degree, or None."""
        ...

    def budget(self, w: Workload, inst: InstanceType, tp: int, share: int) -> Budget:
        """One replica's budget at degree `tp` holding `share` of the users."""
        ...


class NvidiaRules:
    vendor: ClassVar[str] = "nvidia"

    def tp_options(self, w: Workload, inst: InstanceType) -> list[int]:
        return [2**i for i in range(inst.count.bit_length()) if 2**i <= inst.count]

    def refusal(self, w: Workload, inst: InstanceType) -> str | None:
        accel = inst.accelerator
        if w.dtype == "auto" and w.arch.torch_dtype == "bfloat16" and not accel.bf16:
            return (f"{accel.name} has no bfloat16 and {w.model} is a bfloat16 checkpoint; set «dtype» float16 to "
                    "allow running it in float16")
        return None

    def max_num_seqs(self, w: Workload, inst: InstanceType, share: int) -> int:
        """The user's cap («max_num_seqs»), else vLLM's default batch for this GPU class raised to the replica's
        share of the users if that is larger; the KV cache, not this cap, bounds concurrent long requests. (A cap
        below the share is refused by the search: see wording.replica_problem.)"""
        if w.max_num_seqs is not None:
            return w.max_num_seqs
        _, f = facts_for(w.vllm_version)
        return max(share, f["max_num_seqs"][gpu_class(inst.accelerator, f)])

    def budget(self, w: Workload, inst: InstanceType, tp: int, share: int) -> GpuBudget:
        def at(seqs: int) -> GpuBudget:
            return _gpu_cached(w.arch, inst.accelerator.key, tp, seqs, w.max_model_len, w.dtype, w.kv_cache_dtype,
                               w.quantization, w.vllm_version, w.gpu_memory_utilization)

        b = at(self.max_num_seqs(w, inst, share))
        if w.max_num_seqs is None and not b.seqs_ok and b.max_num_seqs_cap:
            # Hybrid models: vLLM refuses more sequences than state blocks (one per decoding sequence); ask for fewer.
            b = at(b.max_num_seqs_cap)
        return b


class NeuronRules:
    vendor: ClassVar[str] = "neuron"

    def tp_options(self, w: Workload, inst: InstanceType) -> list[int]:
        cores = inst.count * inst.accelerator.cores
        return [t for t in neuron_facts()["tensor_parallel_sizes"] if t <= cores and w.arch.num_heads % t == 0]

    def refusal(self, w: Workload, inst: InstanceType) -> str | None:
        return neuron_unsupported(w.arch, quantization=w.quantization, kv_cache_dtype=w.kv_cache_dtype,
                                  gpu_memory_utilization=w.gpu_memory_utilization)

    def budget(self, w: Workload, inst: InstanceType, tp: int, share: int) -> Budget:
        # The compiled batch is the replica's share, or the user's cap when larger (a smaller one is refused).
        return neuron_budget(w.arch, inst.accelerator, tensor_parallel_size=tp, max_model_len=w.max_model_len,
                             max_num_seqs=max(share, w.max_num_seqs or 0), dtype=w.dtype, quantization=w.quantization)


RULES: dict[str, VendorRules] = {r.vendor: r for r in (NvidiaRules(), NeuronRules())}


def rules_for(inst: InstanceType) -> VendorRules:
    return RULES[inst.accelerator.vendor]


@functools.lru_cache(maxsize=4096)
def _gpu_cached(arch: Architecture, accel_key: str, tp: int, seqs: int, max_model_len: int, dtype: str,
                kv_cache_dtype: str, quantization: str | None, vllm_version: str | None,
                util: float | None) -> GpuBudget:
    accel = catalog.accelerator(accel_key)
    kwargs = dict(
        max_model_len=max_model_len, tensor_parallel_size=tp, max_num_seqs=seqs, dtype=dtype,
        kv_cache_dtype=kv_cache_dtype, quantization=quantization, vllm_version=vllm_version,
    )
    budget = gpu_budget(arch, accel, gpu_memory_utilization=util, **kwargs)
    if util is None and not budget.headroom_ok:
        # Keep just enough outside the budget for the CUDA context, graph pool and sampler warm-up.
        lowered = math.floor((1 - budget.headroom_needed_gib / budget.total_gib) * 100) / 100
        if lowered > 0.5:
            budget = gpu_budget(arch, accel, gpu_memory_utilization=lowered, **kwargs)
    return budget


def tp_options(w: Workload, inst: InstanceType) -> list[int]:
    """The degrees the search tries on `inst`: the vendor's, or only the pinned one."""
    options = rules_for(inst).tp_options(w, inst)
    if w.tensor_parallel_size is not None:
        options = [t for t in options if t == w.tensor_parallel_size]
    return options
