"""Quantization is sized as what the checkpoint is, and vLLM is given only a --quantization it has (issue 7 defect 10).

vLLM 0.19.1 facts (its wheel, read 2026-12-02; also in sizing/data/engine.yaml): --quantization accepts the names in
QuantizationMethods (awq, fp8, gptq, compressed-tensors, bitsandbytes, ...; no "int4" or "int8"); a checkpoint's
quantization_config decides the method and a differing flag raises; on the fly from a 16-bit checkpoint it offers
fp8 (Fp8Config.get_min_capability() = 75; native fp8 GEMMs from 8.9, Marlin weight-only below).
"""

from __future__ import annotations

import dataclasses

import pytest

from sizing.architecture import from_config
from sizing.catalog import accelerator, engine_facts, load_model_config
from sizing.errors import SizingError
from sizing.memory import gpu_budget
from sizing.planner import Workload, plan

GIB = 1024**3
VLLM_0_19_1_METHODS = {"awq", "fp8", "fbgemm_fp8", "fp_quant", "modelopt", "modelopt_fp4", "modelopt_mxfp8",
                       "modelopt_mixed", "gguf", "gptq_marlin", "awq_marlin", "gptq", "compressed-tensors",
                       "bitsandbytes", "experts_int8", "quark", "moe_wna16", "torchao", "inc", "mxfp4", "mxfp8",
                       "petit_nvfp4", "cpu_awq"}
AWQ = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"}


def llama(quantization_config=None):
    cfg = load_model_config("meta-llama/Llama-3.1-8B-Instruct")[0]
    if quantization_config:
        cfg = {**cfg, "quantization_config": quantization_config, "torch_dtype": "float16"}
    return from_config(cfg, "meta-llama/Llama-3.1-8B-Instruct" + ("-AWQ" if quantization_config else ""))


def wl(arch, **kw):
    return Workload(arch.name, arch, 8192, 4, **kw)


def quant_flag(p):
    args = p.engine_args
    return args[args.index("--quantization") + 1] if "--quantization" in args else None


def test_the_method_list_is_vllm_0_19_1s():
    assert set(engine_facts()["versions"]["0.19"]["quantization"]["methods"]) == VLLM_0_19_1_METHODS


def test_int4_on_a_bf16_checkpoint_is_refused_naming_the_key_and_what_is_allowed():
    with pytest.raises(SizingError) as err:
        plan(wl(llama(), quantization="int4"))
    message = str(err.value)
    assert err.value.key == "quantization"
    assert message.startswith("quantization int4: ") and "cannot quantize it to int4 on the fly" in message
    assert "set quantization fp8" in message and "AWQ, GPTQ or compressed-tensors" in message
    with pytest.raises(SizingError, match="cannot quantize it to int8 on the fly"):
        plan(wl(llama(), quantization="int8"))


def test_fp8_on_the_fly_is_passed_as_vllms_fp8_and_sized_as_fp8():
    p = plan(wl(llama(), quantization="fp8"))
    assert quant_flag(p) == "fp8" and quant_flag(p) in VLLM_0_19_1_METHODS
    # vLLM 0.19 logged "Model loading took 8.49 GiB" for Llama-3.1-8B with --quantization fp8 (notes s1.2).
    h100 = gpu_budget(llama(), accelerator("h100"), max_model_len=8192, quantization="fp8")
    assert h100.weights_gib == pytest.approx(8.49, rel=0.01)


def test_fp8_on_the_fly_needs_compute_capability_7_5():
    volta = dataclasses.replace(accelerator("a10g"), key="a10g", compute_capability=70)
    with pytest.raises(SizingError, match=r"quantization fp8 on the fly needs compute capability >= 7\.5; this GPU has 7\.0"):
        gpu_budget(llama(), volta, max_model_len=8192, quantization="fp8")
    # T4 (7.5) runs it through the Marlin kernel.
    assert gpu_budget(llama(), accelerator("t4"), max_model_len=2048, dtype="float16", quantization="fp8").weight_format == "fp8"


def test_a_quantized_checkpoint_is_sized_as_it_is_and_gets_no_flag():
    awq = llama(AWQ)
    for asked in (None, "int4"):
        p = plan(wl(awq, quantization=asked))
        assert quant_flag(p) is None  # vLLM reads quantization_config itself (awq -> awq_marlin)
        assert p.weight_format.startswith("int4 (awq")
    # vLLM 0.19 logged 5.38 GiB for the 4-bit group-128 Llama-3.1-8B (tests/sizing/data/vllm_logs).
    b = gpu_budget(awq, accelerator("h100"), max_model_len=8192)
    assert b.weights_gib == pytest.approx(5.38, rel=0.01)
    with pytest.raises(SizingError, match=r"quantization fp8: .* is already a int4 checkpoint \(awq\); vLLM serves it as "
                       r"it is and cannot re-quantize it; leave quantization unset or set it to int4"):
        plan(wl(awq, quantization="fp8"))


@pytest.mark.parametrize("setting, key, words", [
    ({"quantization": "fp8"}, "quantization", "quantization fp8 is not deployed on Neuron"),
    ({"kv_cache_dtype": "fp8"}, "kv_cache_dtype", "kvCacheDtype fp8 is not deployed on Neuron"),
    ({"gpu_memory_utilization": 0.8}, "gpu_memory_utilization", "gpuMemoryUtilization has no effect on Neuron"),
])
def test_neuron_refuses_what_it_would_ignore(setting, key, words):
    arch = from_config(load_model_config("meta-llama/Meta-Llama-3-8B-Instruct")[0], "meta-llama/Meta-Llama-3-8B-Instruct")
    with pytest.raises(SizingError, match=words) as err:
        plan(Workload(arch.name, arch, 4096, 10, vendor="neuron", **setting))
    assert err.value.key == key
    # With family any the GPU fleet is planned and every Neuron type says why it was not.
    p = plan(Workload(arch.name, arch, 4096, 10, vendor="any", **setting))
    assert p.vendor == "nvidia"
    neuron = [r.reason for r in p.rejected if r.instance_type.startswith("inf2")]
    assert neuron and all(words.split(" is ")[0].split(" has ")[0] in reason for reason in neuron)
