"""Each setting is described once (sizing/settings.py) and the CLI, the stack schema and the names in messages are
built from that description; and the batch cap (maxNumSeqs / --max-num-seqs): what the plan passes to vLLM and how it
sizes with it.

Independent fact: vLLM's default batch for the OpenAI server is 256 on GPUs below 70 GiB (vllm/engine/arg_utils.py
at v0.19.1, `_set_default_args`: default_max_num_seqs[UsageContext.OPENAI_API_SERVER] = 256, 1024 on H100-class GPUs,
as H100 logs say "Defaulting ... max_num_seqs to 1024").
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from config import ConfigError, load_stack_config
from config.schema import Model
from plan.models import plan_model
from sizing.architecture import from_config
from sizing.catalog import load_model_config
from sizing.cli import build_parser, main
from sizing.errors import CLI_NAMES, STACK_NAMES, SizingError
from sizing.planner import Workload, plan
from sizing.settings import BY_KEY, SETTINGS

VLLM_DEFAULT_BATCH_SMALL_GPU = 256


def workload(model, max_model_len, concurrency=1, **kw):
    return Workload(model, from_config(load_model_config(model)[0], model), max_model_len, concurrency, **kw)


def stack_model(**keys):
    raw = {"llm-eks:hfToken": "hf_placeholder",
           "llm-eks:models": json.dumps([{"name": "qwen", "model": "Qwen/Qwen3-1.7B", "maxModelLen": 8192, **keys}])}
    return load_stack_config(raw, {"llm-eks:hfToken"}).models[0]


# --- one description per setting -----------------------------------------------------------------------------------


def test_every_workload_field_is_one_described_setting():
    fields = {f.name for f in dataclasses.fields(Workload)} - {"arch"}
    assert fields == set(BY_KEY) - {"config"}


def test_the_cli_flags_and_the_stack_keys_come_from_the_descriptions():
    actions = {a.dest: a for a in build_parser()._actions}
    for s in SETTINGS:
        if s.flag:
            assert actions[s.key].option_strings == [s.flag] and actions[s.key].help.startswith(s.help)
            assert CLI_NAMES[s.key] == s.flag
        if s.field:
            field = Model.model_fields[s.field]
            assert field.description == s.help and field.alias == s.stack and STACK_NAMES[s.key] == s.stack


def test_the_vendor_and_the_accelerator_are_two_words():
    # A stack file's `accelerator` key (kept for existing stack files) is the vendor; the CLI's --accelerator a chip.
    assert STACK_NAMES["vendor"] == "accelerator" and CLI_NAMES["vendor"] == "--vendor"
    help_text = build_parser().format_help()
    assert "--vendor {nvidia,neuron,any}" in help_text and "--accelerator NAME" in help_text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--vendor", "h100"])
    with pytest.raises(SizingError) as err:
        plan(workload("Qwen/Qwen3-1.7B", 8192, vendor="neuron", instance_type="g6.xlarge"))
    assert err.value.render(CLI_NAMES).endswith("(--vendor neuron)")
    assert str(err.value).endswith("(accelerator neuron)")


def test_cli_bounds_are_the_stack_files(capsys):
    # concurrency le=4096 in the stack file: the CLI refuses the same value, in one line.
    with pytest.raises(SystemExit):
        main(["--model", "Qwen/Qwen3-1.7B", "--max-model-len", "8192", "--concurrency", "5000"])
    assert "argument --concurrency: must be a positive integer at most 4096, got 5000" in capsys.readouterr().err


# --- the batch cap ---------------------------------------------------------------------------------------------------


def test_unset_the_plan_passes_vllms_default_batch_and_says_so():
    p = plan(workload("Qwen/Qwen3-1.7B", 8192, 4))
    assert p.instance_type == "g6.xlarge"
    i = p.engine_args.index("--max-num-seqs")
    assert p.engine_args[i + 1] == str(VLLM_DEFAULT_BATCH_SMALL_GPU)
    assert "vLLM's for the GPU" in BY_KEY["max_num_seqs"].help


def test_a_cap_is_passed_and_sized_with():
    free = plan(workload("Qwen/Qwen3-1.7B", 8192, 4))
    capped = plan(workload("Qwen/Qwen3-1.7B", 8192, 4, max_num_seqs=8))
    i = capped.engine_args.index("--max-num-seqs")
    assert capped.engine_args[i + 1] == "8" and capped.max_num_seqs == 8
    # A smaller batch means a smaller sampler profile: never less KV cache than at vLLM's 256.
    assert capped.memory.max_num_seqs == 8
    assert capped.memory.kv_cache_gib >= free.memory.kv_cache_gib


def test_a_cap_below_the_share_spreads_the_users_over_more_replicas():
    p = plan(workload("Qwen/Qwen3-0.6B", 1024, 8, max_replicas=4, max_num_seqs=2))
    assert p.replicas == 4 and p.concurrency_per_replica == 2 and p.max_num_seqs == 2
    with pytest.raises(SizingError) as err:
        plan(workload("Qwen/Qwen3-0.6B", 1024, 8, max_replicas=2, max_num_seqs=2))
    words = err.value.render(CLI_NAMES)
    assert "only with more replicas than --max-replicas 2 allows" in words
    assert "raise --max-replicas to 4, or lower --concurrency, or raise --max-num-seqs" in words


def test_a_stack_file_caps_the_batch_with_max_num_seqs():
    planned = plan_model(stack_model(maxNumSeqs=8), 0)
    args = list(planned.server_args)
    assert args[args.index("--max-num-seqs") + 1] == "8"


def test_extra_engine_args_name_the_key_that_sets_the_batch():
    with pytest.raises(ConfigError) as err:
        plan_model(stack_model(extraEngineArgs=["--max-num-seqs", "8"]), 0)
    assert str(err.value) == (f"llm-eks:models[0].extraEngineArgs: --max-num-seqs is set by the plan (maxNumSeqs: "
                              f"{VLLM_DEFAULT_BATCH_SMALL_GPU}); set maxNumSeqs instead")
