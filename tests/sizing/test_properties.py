"""Properties that must hold for any input (hypothesis)."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings, strategies as st

from sizing.architecture import from_config
from sizing.catalog import accelerator, catalog_models, instances, load_config_file
from sizing.errors import SizingError
from sizing.memory import gpu_budget
from sizing.planner import Workload, plan
from sizing.weights import WeightFormat, resolve_format, weight_bytes

SMALL_MODELS = ["qwen/qwen3-0.6b", "qwen/qwen3-1.7b", "meta-llama/llama-3.2-1b", "qwen/qwen2.5-3b",
                "meta-llama/llama-3.1-8b", "google/gemma-2-9b-it", "microsoft/phi-3-mini-4k-instruct",
                "mistralai/mixtral-8x7b-v0.1", "qwen/qwen3-30b-a3b"]


@cache
def arch(model_id):
    return from_config(load_config_file(catalog_models()[model_id]), model_id)


models = st.sampled_from(SMALL_MODELS)
gpus = st.sampled_from(["a10g", "l4", "l40s", "a100-80gb", "h100"])


@settings(max_examples=60, deadline=None)
@given(models, gpus, st.integers(256, 32768), st.integers(256, 32768), st.sampled_from(["auto", "fp8"]))
def test_more_context_never_needs_less_memory(model, gpu, a, b, kv):
    short, long = sorted((a, b))
    m = arch(model)
    long = min(long, m.context_window)
    short = min(short, long)
    s = gpu_budget(m, accelerator(gpu), max_model_len=short, kv_cache_dtype=kv)
    lb = gpu_budget(m, accelerator(gpu), max_model_len=long, kv_cache_dtype=kv)
    assert s.needed_kv_gib <= lb.needed_kv_gib
    assert s.max_concurrency >= lb.max_concurrency - 1e-9
    assert not lb.fits or s.fits


def _dominates(big, small):
    return (big.family == small.family and big.name != small.name and big.count >= small.count
            and big.vcpu >= small.vcpu and big.memory_gib >= small.memory_gib)


PAIRS = [(s.name, b.name) for s in instances().values() for b in instances().values() if _dominates(b, s)]


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(PAIRS), models, st.sampled_from([2048, 8192, 32768]), st.integers(1, 64))
def test_a_larger_instance_of_a_family_never_fits_less(pair, model, length, concurrency):
    small, big = pair
    m = arch(model)
    length = min(length, m.context_window)
    family = "neuron" if small.startswith(("inf", "trn")) else "nvidia"

    def fits(name):
        try:
            plan(Workload(model, m, length, concurrency, vendor=family, instance_type=name, dtype="auto"))
            return True
        except SizingError:
            return False

    assert not fits(small) or fits(big), f"{model} fits {small} but not {big}"


@settings(max_examples=60, deadline=None)
@given(models, st.sampled_from([None, "fp8", "int8", "int4"]))
def test_tensor_parallelism_never_raises_weights_per_rank(model, quantization):
    m = arch(model)
    fmt = {None: WeightFormat("bfloat16"), "fp8": resolve_format(m, "bfloat16", "fp8"),
           "int8": WeightFormat("bfloat16", "int8-channel", 8), "int4": WeightFormat("bfloat16", "awq", 4, 128)}[quantization]
    tps = [t for t in (1, 2, 4, 8, 16) if m.num_heads % t == 0]
    per_rank = [weight_bytes(m, fmt, t) for t in tps]
    assert per_rank == sorted(per_rank, reverse=True)
    assert per_rank[0] == weight_bytes(m, fmt)  # TP 1 holds the whole model


@settings(max_examples=40, deadline=None)
@given(models, gpus, st.floats(0.5, 0.95), st.floats(0.5, 0.95))
def test_more_utilization_never_means_fewer_kv_tokens(model, gpu, u1, u2):
    lo, hi = sorted((u1, u2))
    m = arch(model)
    a = gpu_budget(m, accelerator(gpu), max_model_len=4096, gpu_memory_utilization=lo)
    b = gpu_budget(m, accelerator(gpu), max_model_len=4096, gpu_memory_utilization=hi)
    assert a.kv_cache_tokens <= b.kv_cache_tokens
