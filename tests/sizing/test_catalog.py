"""The instance catalog held to Karpenter's generated instance-type and pricing files (extract committed beside)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sizing.catalog import INTERCONNECTS, accelerators, instances, prices_as_of

KARPENTER = yaml.safe_load((Path(__file__).parent / "data" / "karpenter_instance_types.yaml").read_text())["instance_types"]
# Karpenter's instance-gpu-name / instance-accelerator-name -> our accelerator key.
NAMES = {"t4": "t4", "a10g": "a10g", "l4": "l4", "l40s": "l40s", "h100": "h100", "h200": "h200", "b200": "b200",
         "b300": "b300", "rtx-pro-server-6000": "rtx-pro-6000", "inferentia2": "inferentia2", "trainium": "trainium",
         "trainium2": "trainium2"}


def _accelerator_key(name: str, row: dict) -> str:
    if row["accelerator"] == "a100":  # one label for both A100s; the memory tells them apart
        return "a100-80gb" if row["accelerator_memory_mib"] > 50000 else "a100-40gb"
    return NAMES[row["accelerator"]]


@pytest.mark.parametrize("name", sorted(instances()), ids=str)
def test_every_instance_matches_karpenter(name):
    it, row = instances()[name], KARPENTER[name]
    assert it.accelerator.key == _accelerator_key(name, row)
    assert (it.count, it.vcpu, it.memory_gib * 1024) == (row["count"], row["cpu"], row["memory_mib"])
    assert f"{it.alloc_cpu_m}m" == row["alloc_cpu"] and f"{it.alloc_memory_mi}Mi" == row["alloc_memory"]
    assert row["devices"] == it.count
    assert row["price"] is not None and it.hourly_usd == pytest.approx(row["price"], abs=1e-6)
    if row["accelerator_memory_mib"] and it.accelerator.vendor == "nvidia":
        assert it.accelerator.memory_gib == pytest.approx(row["accelerator_memory_mib"] / 1024, abs=0.01)


def test_the_accelerators_aws_sells_today_are_offered():
    offered = {i.accelerator.key for i in instances().values()}
    assert offered >= {"t4", "a10g", "l4", "l40s", "a100-40gb", "a100-80gb", "h100", "h200", "b200", "b300",
                       "rtx-pro-6000", "inferentia2", "trainium"}
    assert {"g7e.2xlarge", "p5.4xlarge", "p5en.48xlarge", "p6-b200.48xlarge", "p6-b300.48xlarge"} <= set(instances())


def test_only_unpriced_types_of_known_families_are_left_out():
    """A type Karpenter lists with a us-east-1 price is offered, unless it is a larger sibling at a higher price
    that adds no accelerator (g4dn.16xlarge, g4dn.metal)."""
    left_out = {n for n, row in KARPENTER.items() if n not in instances()}
    assert {n for n in left_out if KARPENTER[n]["price"] is None} == {"p5e.48xlarge", "trn2.48xlarge"}
    assert {n for n in left_out if KARPENTER[n]["price"] is not None} == {"g4dn.16xlarge", "g4dn.metal"}


def test_interconnect_is_recorded_for_every_instance():
    for it in instances().values():
        assert it.interconnect in INTERCONNECTS
        if it.count == 1:
            assert it.interconnect == "none"
        elif it.accelerator.is_neuron:
            assert it.interconnect == "neuron"
        else:  # the p families are the NVSwitch ones; the g families are PCIe cards
            assert it.interconnect == ("nvlink" if it.family.startswith("p") else "pcie")
        assert (it.p2p is not None) == (it.interconnect == "pcie")


def test_usable_memory_is_what_cuda_reports_below_the_label():
    for a in accelerators().values():
        if a.vendor == "nvidia":
            assert 0.9 * a.memory_gib < a.usable_gib < a.memory_gib  # ECC and the driver take 1-9%
        assert a.compute_capability or a.vendor == "neuron"


def test_prices_are_dated():
    assert prices_as_of() == "2026-07-20"  # the pricing file's own generation date


def test_any_other_gpu_is_budgeted_from_what_cuda_reports(capsys):
    """--gpu-memory-gib with an H100's CUDA total (79.19 GiB), compute 9.0 and NVLink gives the H100's own budget,
    the one held to vLLM's H100 logs; a GPU AWS does not sell defaults to NVLink's larger TP overhead."""
    import json

    from sizing.cli import main

    def kv(*argv):
        assert main(["--model", "Qwen/Qwen3-32B", "--max-model-len", "8192", "--tp", "2", "--json", *argv]) == 0
        return json.loads(capsys.readouterr().out)

    named = kv("--accelerator", "h100")
    custom = kv("--gpu-memory-gib", "79.19", "--compute-capability", "9.0")
    assert custom["kv_cache_tokens"] == named["kv_cache_tokens"] and custom["non_torch_gib"] == 2.2
    assert kv("--gpu-memory-gib", "79.19", "--compute-capability", "9.0", "--interconnect", "pcie")["non_torch_gib"] == 0.35
    assert kv("--accelerator", "l40s")["non_torch_gib"] == 0.35  # AWS's L40S are PCIe cards (g6e)
