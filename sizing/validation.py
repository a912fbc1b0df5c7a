"""Settings that are wrong whatever the instance: each fails at once, naming its key, before the search runs."""

from __future__ import annotations

from .budget import tp_options
from .catalog import InstanceType
from .errors import SizingError
from .memory import DTYPES, KV_CACHE_DTYPES, check_context, check_tensor_parallel, facts_for
from .neuron import check_neuron_tp, neuron_unsupported
from .plans import Workload
from .weights import resolve_format


def validate(w: Workload, candidates: list[InstanceType], vendor_label: str) -> None:
    """Settings that are wrong whatever the instance: each fails at once, naming its key."""
    if w.concurrency <= 0:
        raise SizingError(f"«concurrency» must be positive (got {w.concurrency})", key="concurrency")
    if w.vendor not in ("nvidia", "neuron", "any"):
        raise SizingError(f"«vendor» '{w.vendor}' is not one of nvidia, neuron, any", key="vendor")
    if w.min_replicas < 0 or w.max_replicas < 1 or w.min_replicas > w.max_replicas:
        raise SizingError(f"replica bounds {w.min_replicas}..{w.max_replicas} need 0 <= «min_replicas» <= "
                          f"«max_replicas» and «max_replicas» >= 1", key="max_replicas")
    if w.max_num_seqs is not None and w.max_num_seqs <= 0:
        raise SizingError(f"«max_num_seqs» must be positive (got {w.max_num_seqs})", key="max_num_seqs")
    if w.spread_zones < 1:
        raise SizingError(f"«spread_zones» must be at least 1 (got {w.spread_zones})", key="spread_zones")
    if w.spread_zones >= 2 and w.max_replicas < 2:
        raise SizingError(f"spreading over {w.spread_zones} availability zones («spread_zones») needs at least 2 "
                          f"replicas, and «max_replicas» is {w.max_replicas}; raise «max_replicas» to 2 or more",
                          key="max_replicas")
    if w.max_hourly_usd is not None and w.max_hourly_usd <= 0:
        raise SizingError(f"«max_hourly_usd» must be positive (got {w.max_hourly_usd:g})", key="max_hourly_usd")
    check_context(w.arch, w.max_model_len)
    check_load(w)
    facts_for(w.vllm_version)  # an invalid vLLM version is the binding reason, whatever the instance
    if w.dtype not in DTYPES:
        raise SizingError(f"«dtype» '{w.dtype}' is not one of {', '.join(DTYPES)}", key="dtype")
    if w.kv_cache_dtype not in KV_CACHE_DTYPES:
        raise SizingError(f"«kv_cache_dtype» '{w.kv_cache_dtype}' is not one of {', '.join(KV_CACHE_DTYPES)}",
                          key="kv_cache_dtype")
    if w.gpu_memory_utilization is not None and not 0 < w.gpu_memory_utilization <= 1:
        raise SizingError(f"«gpu_memory_utilization» must be in (0, 1] (got {w.gpu_memory_utilization})",
                          key="gpu_memory_utilization")
    vendors = {i.accelerator.vendor for i in candidates}
    if "nvidia" in vendors or w.vendor == "nvidia":
        resolve_format(w.arch, "bfloat16", w.quantization)  # a format vLLM cannot load or produce fails here
    if vendors == {"neuron"}:
        unsupported = neuron_unsupported(w.arch, quantization=w.quantization, kv_cache_dtype=w.kv_cache_dtype,
                                         gpu_memory_utilization=w.gpu_memory_utilization)
        if unsupported:
            k = next(k for k in ("quantization", "kv_cache_dtype", "gpu_memory_utilization") if f"«{k}»" in unsupported) \
                if "«" in unsupported else "model"
            raise SizingError(unsupported, key=k)
    tp = w.tensor_parallel_size
    if tp is not None:
        if vendors == {"neuron"}:
            check_neuron_tp(w.arch, tp)
        elif vendors == {"nvidia"}:
            check_tensor_parallel(w.arch, tp)
        if not any(tp_options(w, i) for i in candidates):
            most = max((i.count * i.accelerator.cores for i in candidates), default=0)
            what = "NeuronCores" if vendors == {"neuron"} else "GPUs" if vendors == {"nvidia"} else "accelerators"
            where = f"instance type {w.instance_type}" if w.instance_type else f"{vendor_label} instance type"
            raise SizingError(f"«tensor_parallel_size» {tp} fits no {where}: tensor parallelism needs {tp} {what} "
                              f"in one node (a power of two on GPUs), and the most here is {most}",
                              key="tensor_parallel_size")


def check_load(w: Workload) -> None:
    """A latency target or a request rate is planned for a request shape: input and output tokens, within the
    context."""
    asks = [k for k in ("requests_per_second", "ttft_p90_ms", "itl_ms") if getattr(w, k) is not None]
    shape = (w.input_tokens, w.output_tokens)
    if (asks or any(x is not None for x in shape)) and None in shape:
        missing = "input_tokens" if w.input_tokens is None else "output_tokens"
        why = f"«{asks[0]}» is planned for" if asks else "the load needs"
        raise SizingError(f"{why} a request shape: set «input_tokens» and «output_tokens»", key=missing)
    if None not in shape and w.input_tokens + w.output_tokens > w.max_model_len:
        raise SizingError(f"«input_tokens» {w.input_tokens} + «output_tokens» {w.output_tokens} exceed «max_model_len» "
                          f"{w.max_model_len}", key="max_model_len")
