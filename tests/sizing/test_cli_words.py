"""Honest words (issue 10 item 2), each asserted as the user reads it: the CLI in its flags, a stack file's path
(str(SizingError)) in its keys."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys

import pytest

from components.versions import VLLM_VERSION
from sizing.architecture import from_config
from sizing.catalog import instances, load_model_config
from sizing.cli import main
from sizing.errors import CLI_NAMES, STACK_NAMES, SizingError
from sizing.planner import Workload, plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QWEN = ["--model", "Qwen/Qwen3-1.7B", "--max-model-len", "8192", "--concurrency", "4"]
MISTRAL = ["--model", "mistralai/Mistral-7B-Instruct-v0.3", "--max-model-len", "32768", "--concurrency", "16"]


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, " ".join(out.out.split()), " ".join(out.err.split())


def test_the_issues_command_finds_the_fleet_at_or_under_5_6_per_hour(capsys):
    # Issue 10 asked for <= $5.6/h (3 x g6e.xlarge, $5.583/h); since g7e (issue 15) one RTX PRO 6000 holds it.
    code, out, _ = run(capsys, *MISTRAL, "--json")
    assert code == 0
    d = json.loads(out)
    assert d["instance_type"] == "g7e.2xlarge" and d["replicas"] == 1 and d["nodes"] == 1
    assert d["fleet_hourly_usd"] == pytest.approx(3.36312, abs=1e-4) and d["fleet_hourly_usd"] <= 5.6
    assert d["hourly_usd"] == pytest.approx(3.36312, abs=1e-4) and d["concurrency_per_replica"] == 16
    code, out, _ = run(capsys, *MISTRAL)
    assert "1 replica on 1 x g7e.2xlarge ($3.363/h each, fleet $3.363/h) is the cheapest NVIDIA fleet" in out
    assert "fleet 1 replica(s) on 1 x g7e.2xlarge" in out and "fleet $3.363/h" in out


def test_max_replicas_1_keeps_one_replica(capsys):
    code, out, _ = run(capsys, *MISTRAL, "--max-replicas", "1", "--json")
    assert code == 0 and json.loads(out)["instance_type"] == "g7e.2xlarge" and json.loads(out)["replicas"] == 1


def test_a_pinned_instance_is_pinned_with_the_cheaper_option_named(capsys):
    code, out, _ = run(capsys, *QWEN, "--instance", "g6.2xlarge")
    assert code == 0
    assert "g6.2xlarge is pinned (--instance), not chosen: 1 replica on 1 x g6.2xlarge" in out
    assert "Cheaper: 1 replica on 1 x g6.xlarge at TP 1, $0.8048/h ($0.1728/h less); unset --instance to let the planner choose" in out
    assert "is the cheapest" not in out
    code, out, _ = run(capsys, *QWEN, "--instance", "g6.2xlarge", "--json")
    d = json.loads(out)
    assert d["pinned"] is True and d["cheapest_alternative"].startswith("1 replica on 1 x g6.xlarge")


def bad(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and "Traceback" not in err
    return err


def test_an_invalid_vllm_version_is_the_reason_not_the_cheapest_candidates(capsys):
    err = bad(capsys, *QWEN, "--vllm-version", "latest")
    assert err == "python -m sizing: error: --vllm-version 'latest' is not a vLLM version of the form 0.19.1"
    # One line naming the range: engine.yaml's oldest_version to the pinned image's (components/versions.py).
    for outside in ("0.1.0", "0.18.1", "0.32.1", "0.34.0"):
        err = bad(capsys, *QWEN, "--vllm-version", outside)
        assert err == (f"python -m sizing: error: --vllm-version {outside} is outside the vLLM releases modelled, "
                       f"0.19.0 to {VLLM_VERSION}")
    for inside in ("0.19.0", "v0.25.1", "0.32.0"):
        code, out, _ = run(capsys, *QWEN, "--vllm-version", inside, "--json")
        assert code == 0 and json.loads(out)["memory"]["vllm_version"] == inside


def test_the_price_cap_is_the_reason_when_it_binds(capsys):
    err = bad(capsys, *MISTRAL, "--max-hourly-usd", "3")
    assert ("no fleet from the NVIDIA catalog that holds mistralai/Mistral-7B-Instruct-v0.3 at 32768 tokens x 16 stays "
            "within the --max-hourly-usd cap of $3/h: the cheapest is 1 replica on 1 x g7e.2xlarge") in err
    assert "raise --max-hourly-usd to 3.37" in err


def test_a_tp_that_fits_nothing_is_the_reason(capsys):
    err = bad(capsys, *QWEN, "--tp", "16")
    assert ("--tp 16 fits no NVIDIA instance type: tensor parallelism needs 16 GPUs in one node (a power of two on "
            "GPUs), and the most here is 8") in err
    err = bad(capsys, *QWEN, "--tp", "3")
    # Qwen3-1.7B's config.json: 16 attention heads, 8 KV heads; vLLM takes the divisors that split or replicate both.
    assert "--tp 3 does not divide the 16 attention heads of Qwen/Qwen3-1.7B; valid: 1, 2, 4, 8, 16" in err
    # Qwen3-32B: 64 heads, 8 KV heads; a stack file reads its own key name.
    arch = from_config(load_model_config("Qwen/Qwen3-32B")[0], "Qwen/Qwen3-32B")
    with pytest.raises(SizingError) as exc:
        plan(Workload("Qwen/Qwen3-32B", arch, 8192, tensor_parallel_size=3))
    assert str(exc.value) == ("tensorParallelSize 3 does not divide the 64 attention heads of Qwen/Qwen3-32B; valid: "
                              "1, 2, 4, 8, 16, 32, 64")


def test_hints_use_each_front_ends_key_names(capsys):
    # The same impossible workload: the CLI's words, then a stack file's.
    err = bad(capsys, "--model", "Qwen/Qwen3-32B", "--max-model-len", "32768", "--instance", "g6.xlarge")
    assert "--instance g6.xlarge cannot hold Qwen/Qwen3-32B at 32768 tokens x 1" in err
    # Qwen3-32B's bf16 weights (61 GiB) exceed one L4 even as fp8: unpinning is the only change that holds it.
    assert re.search(r"; what would hold it: unset --instance \(1 replica on 1 x \S+ at TP \d, \$[\d.]+/h\)$", err.strip())
    arch = from_config(load_model_config("Qwen/Qwen3-32B")[0], "Qwen/Qwen3-32B")
    with pytest.raises(SizingError) as exc:
        plan(Workload("Qwen/Qwen3-32B", arch, 32768, 1, instance_type="g6.xlarge"))
    stack = str(exc.value)
    assert exc.value.key == "instance_type"
    assert stack.startswith("instanceType g6.xlarge cannot hold Qwen/Qwen3-32B")
    assert re.search(r"; what would hold it: unset instanceType \(1 replica on 1 x \S+ at TP \d, \$[\d.]+/h\)$", stack)
    assert "--" not in stack and "«" not in stack
    assert exc.value.render(CLI_NAMES) != exc.value.render(STACK_NAMES)


def test_the_utilization_change_on_a10g_with_tp_2_is_explained(capsys):
    # Up to vLLM 0.20 the CUDA graphs are allocated outside the budget, so the headroom must hold them too.
    llama = ("--model", "meta-llama/Llama-2-13b-chat-hf", "--max-model-len", "3072", "--concurrency", "4",
             "--instance", "g5.12xlarge", "--tp", "2")
    code, out, _ = run(capsys, *llama, "--vllm-version", "0.19.1")
    assert code == 0
    # engine.yaml: CUDA context 1.51 GiB at TP > 1; 10% of an A10G's 22.06 GiB is 2.21 GiB.
    assert ("--gpu-memory-utilization lowered from vLLM 0.19.1's default 0.9 to 0.88: at TP 2 each NVIDIA A10G must "
            "keep 2.63 GiB outside vLLM's budget (CUDA context 1.51 with NCCL, CUDA graphs") in out
    assert "10% of its 22.06 GiB is only 2.21 GiB; set --gpu-memory-utilization to override" in out
    code, out, _ = run(capsys, *llama, "--vllm-version", "0.19.1", "--json")
    assert json.loads(out)["utilization_note"].startswith("--gpu-memory-utilization lowered from")
    # From 0.21 the graph estimate comes out of the budget: the default 0.92 leaves room for the rest.
    code, out, _ = run(capsys, *llama, "--json")
    assert json.loads(out)["utilization_note"] is None and json.loads(out)["memory"]["gpu_memory_utilization"] == 0.92


def test_resources_are_printed_as_kubernetes_quantities_and_every_rejection_with_its_reason(capsys):
    code, out, _ = run(capsys, *QWEN)
    assert code == 0
    assert "pod requests cpu=" in out and " memory=" in out and "m memory=" in out and "nvidia.com/gpu=1" in out
    assert "{" not in out and "'cpu'" not in out
    cheaper = [i for i in instances().values() if i.accelerator.vendor == "nvidia" and i.hourly_usd < 0.8048]
    assert cheaper
    assert f"instance types cheaper per hour than this fleet, and why not ({len(cheaper)})" in out
    for inst in cheaper:
        assert f"{inst.name} {inst.hourly_usd:.4g} " in out
    assert "NVIDIA T4 has no bfloat16 and Qwen/Qwen3-1.7B is a bfloat16 checkpoint; set --dtype float16" in out


def test_json_into_head_exits_quietly():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def piped(reader: str, *extra: str) -> subprocess.CompletedProcess:
        cmd = f"{sys.executable} -m sizing {' '.join(QWEN)} {' '.join(extra)} | {reader}"
        return subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=env, capture_output=True, text=True)

    done = piped("head -1", "--json")
    assert done.stdout == "{\n" and done.stderr == ""
    # A reader that is gone before the first write: the write fails with EPIPE; still no traceback, exit 0.
    gone = subprocess.run(["bash", "-c", f"{sys.executable} -m sizing {' '.join(QWEN)} --json | true; "
                           "echo ${PIPESTATUS[0]}"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert gone.stderr == "" and gone.stdout.strip() == "0"
    assert piped("true").stderr == ""  # the tables too (rich leaves quietly)


# --- suggestions are only what works (issue 21 item 4) -----------------------------------------------------------


SUGGESTION = re.compile(r"(unset --instance|--\S+ \S+[^(]*) \((\d+) replicas? on (\d+) x (\S+) at TP (\d+), \$([\d.]+)/h\)")


@pytest.mark.parametrize("extra", [[], ["--kv-cache-dtype", "fp8", "--quantization", "fp8"]], ids=["bf16", "fp8"])
def test_a_70b_pinned_to_one_l4_is_told_to_unpin_with_the_price_not_fp8_or_a_vendor(capsys, extra):
    # Llama-3.1-70B: 131.45 GiB of bf16 weights, 65.7 GiB as fp8 (70.55e9 parameters, tests/sizing/data); one L4 has
    # 22.03 GiB usable (accelerators.yaml): neither fits, whatever the KV dtype, so only unpinning can hold it; and
    # --vendor does nothing while the instance type is pinned.
    err = bad(capsys, "--model", "meta-llama/Llama-3.1-70B-Instruct", "--max-model-len", "8192",
              "--instance", "g6.xlarge", *extra)
    hints = err.split("; what would hold it: ", 1)[1].strip()
    assert "fp8" not in hints and "--vendor" not in hints and "try" not in err
    (match,) = SUGGESTION.finditer(hints)
    assert match.group(1) == "unset --instance" and match.group(0) == hints
    replicas, nodes, chosen, tp, usd = match.groups()[1:]
    # Its price is the catalog's (us-east-1 on-demand, instances.yaml) times the nodes, and it really holds it.
    assert float(usd) == pytest.approx(int(nodes) * instances()[chosen].hourly_usd, rel=1e-3)
    assert main(["--model", "meta-llama/Llama-3.1-70B-Instruct", "--max-model-len", "8192", "--instance", chosen,
                 "--tp", tp, *extra]) == 0


def test_every_suggestion_holds_the_workload_when_applied():
    # Qwen3-8B at 32768 x 8 pinned to g6.xlarge: each offered change, applied, plans (none is a guess).
    arch = from_config(load_model_config("Qwen/Qwen3-8B")[0], "Qwen/Qwen3-8B")
    w = Workload("Qwen/Qwen3-8B", arch, 32768, 8, instance_type="g6.xlarge", max_replicas=8)
    with pytest.raises(SizingError) as exc:
        plan(w)
    assert exc.value.suggestions, str(exc.value)
    for changes, words in exc.value.suggestions:
        p = plan(dataclasses.replace(w, **changes))
        assert f"on {p.nodes} x {p.instance_type} at TP {p.tensor_parallel_size}, ${p.fleet_hourly_usd:.4g}/h)" in words


# --- the catalog and offline ids (issue 21 item 5) -----------------------------------------------------------------


def test_list_models_prints_whole_ids_as_the_hub_spells_them(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["--list-models"]) == 0
    out = capsys.readouterr().out
    ids = [line.split()[0] for line in out.splitlines()[2:]]
    # Spelled as on huggingface.co (https://huggingface.co/meta-llama/Llama-3.1-70B-Instruct, .../Qwen/Qwen3-1.7B,
    # .../NousResearch/Meta-Llama-3-8B-Instruct), whole, however narrow the terminal.
    for hub_id in ("meta-llama/Llama-3.1-70B-Instruct", "Qwen/Qwen3-1.7B", "NousResearch/Meta-Llama-3-8B-Instruct"):
        assert hub_id in ids
    assert "…" not in out and len(ids) == len({i.lower() for i in ids})


def test_an_uncatalogued_id_offline_says_offline_not_missing(capsys, monkeypatch):
    import socket

    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def no_connection(*args, **kwargs):  # what hf_hub_download raises when DNS answers but nothing connects
        raise LocalEntryNotFoundError("Cannot find the requested files in the local cache and outgoing traffic is off")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [])
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_connection)
    err = bad(capsys, "--model", "someorg/some-model", "--max-model-len", "4096")
    assert err.startswith("python -m sizing: error: model 'someorg/some-model' is not in the built-in catalog and "
                          "huggingface.co cannot be reached (offline?); set --config to a local config.json, or use "
                          "one of the ")
    assert "does not exist" not in err and "LocalEntryNotFoundError" not in err
    # A stack file reads the same problem in its own key names.
    with pytest.raises(SizingError) as exc:
        load_model_config("someorg/some-model")
    assert "set config to a local config.json" in str(exc.value) and "--config" not in str(exc.value)


def test_the_plan_names_each_rule_of_thumb_by_what_it_is_not_a_seed_number(capsys, monkeypatch):
    # A user of the repository has no "seed 000" document: the table says what each rule is.
    monkeypatch.setenv("COLUMNS", "200")
    assert main(QWEN) == 0
    out = capsys.readouterr().out
    assert "seed" not in out.lower()
    assert "published rules of thumb (EKS deployment guides)" in out
    assert "20% overhead: parameters x bytes x 1.2" in out
