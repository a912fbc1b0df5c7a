"""Host RAM of a vLLM pod, held to what the loader was measured to need (tests/sizing/data/host_loading.yaml, from
tools/measure_host_loading.py) and to the published shapes of the checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sizing.architecture import from_config
from sizing.catalog import GIB, instance, load_model_config
from sizing.host_memory import gpu_host_memory, largest_tensor_bytes
from sizing.pod import checkpoint_bytes, host_fit

MEASURED = yaml.safe_load((Path(__file__).parent / "data" / "host_loading.yaml").read_text())


def arch(model):
    return from_config(load_model_config(model)[0], model)


def test_the_default_loader_needs_less_than_the_checkpoint_and_eager_does_not():
    """The measurement the rule stands on: vLLM's default path finished a 2.85 GiB checkpoint in every cgroup smaller
    than it (0.75 to 1.5 GiB), one rank or two at once, with anonymous memory flat; reading it eagerly was killed."""
    lazy = [r for r in MEASURED["runs"] if r["mode"] == "lazy"]
    eager = [r for r in MEASURED["runs"] if r["mode"] == "eager"]
    assert lazy and eager
    assert all(r["finished"] and r["oom_killed"] == 0 and r["limit_gib"] < MEASURED["checkpoint_gib"] for r in lazy)
    assert all(max(r["anon_growth_gib"]) < 0.01 for r in lazy)
    assert all(not r["finished"] and r["oom_killed"] == 1 for r in eager)
    assert {r["tp"] for r in lazy} == {1, 2}


def test_the_rule_holds_the_measured_minimum_and_more_than_the_processes_import():
    # The loader's part of the rule (page cache + one tensor per rank) covers the smallest cgroup that loaded, and
    # each process allowance is above what importing its vLLM module takes without CUDA.
    qwen = arch("Qwen/Qwen3-8B")
    for tp in (1, 2):
        h = gpu_host_memory(qwen, tp)
        smallest = min(r["limit_gib"] for r in MEASURED["runs"] if r["mode"] == "lazy" and r["tp"] == tp)
        assert h.page_cache_gib + h.loading_gib >= smallest
    from sizing.host_memory import host_memory_facts

    allowances = host_memory_facts()["process_gib"]
    for name, measured in MEASURED["import_rss_gib"].items():
        assert allowances[name] > measured


def test_largest_tensor_is_the_embedding_by_hand():
    # Qwen3-8B config.json: vocab 151936 x hidden 4096, bfloat16 = 1.159 GiB, the same as the measured shard's.
    assert largest_tensor_bytes(arch("Qwen/Qwen3-8B")) == 151936 * 4096 * 2
    # Llama-3.1-70B: 128256 x 8192 x 2 bytes = 1.96 GiB.
    assert largest_tensor_bytes(arch("meta-llama/Llama-3.1-70B-Instruct")) == 128256 * 8192 * 2


def test_qwen3_8b_loads_on_a_g6_xlarge():
    """Issue 15: 15.3 GiB of weights were refused on g6.xlarge ("the server needs 21.3 GiB to load"); the pod there
    can have (14162 - 1536) x 0.9 MiB = 11.1 GiB, and vLLM needs its processes and one tensor, not the checkpoint."""
    a = arch("Qwen/Qwen3-8B")
    fit = host_fit(instance("g6.xlarge"), 1, checkpoint_bytes(a), a)
    assert fit.problem is None
    assert fit.host_needed_gib < (14162 - 1536) * 0.9 / 1024 < checkpoint_bytes(a) / GIB
    assert fit.resources.memory_mib >= fit.host_needed_gib * 1024


def test_tensor_parallel_ranks_each_need_a_process_and_a_tensor():
    a = arch("meta-llama/Llama-3.1-70B-Instruct")
    one, eight = gpu_host_memory(a, 1), gpu_host_memory(a, 8)
    assert eight.processes_gib - one.processes_gib == pytest.approx(7 * 3.0)  # seven more GPU worker processes
    assert eight.loading_gib == pytest.approx(8 * one.loading_gib)
    assert one.shm_gib == 0 and eight.shm_gib > 0
    # Still far below the 131 GiB of weights: every TP degree loads on p4d/p5 nodes' shares with room to spare.
    assert eight.total_gib < checkpoint_bytes(a) / GIB / 2


def test_neuron_still_counts_the_weights_to_compile():
    a = arch("meta-llama/Meta-Llama-3-8B-Instruct")
    fit = host_fit(instance("inf2.xlarge"), 2, checkpoint_bytes(a), a)
    assert fit.problem is not None and "to compile" in fit.problem
    assert fit.host_needed_gib > 3 * checkpoint_bytes(a) / GIB
