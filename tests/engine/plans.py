"""Every stack's engine arguments, as JSON on stdout: `venv/bin/python -m tests.engine.plans`.

Runs in the main virtualenv (the Pulumi program's packages); tests/engine/real/ reads the JSON in the engine
virtualenvs and hands each argument list to the pinned vLLM's own parser. GPU models: the `vllm serve` arguments of
the Deployment (the plan's server_args, which components/model_server.py passes as the container's args). Neuron
models: the EngineSettings the RayService puts in the worker's environment (the plan's engine_settings), which
serving/vllm_engine.py turns into AsyncEngineArgs.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def collect() -> dict:
    from components import versions
    from config import load_stack_config
    from plan.models import plan_models
    from preview.harness import available_stacks, read_stack_config, stack_file
    from sizing import catalog

    models = []
    for stack in available_stacks("eks"):  # SageMaker stacks pass LMI options, not argv
        raw, secrets = read_stack_config(stack_file(stack))
        for model in plan_models(load_stack_config(raw, set(secrets))):
            entry = {"stack": stack, "name": model.name, "model": model.spec.model, "server": model.server}
            # The model's config.json, as the planner read it (the stack's `config` file, else sizing's catalog):
            # the engine tests build vLLM's whole engine config from it, offline.
            if model.spec.config:
                path = Path(model.spec.config)
                entry["config"] = catalog.load_config_file(path if path.is_absolute() else REPO / path)
            else:
                entry["config"] = catalog.load_model_config(model.spec.model)[0]
            if model.server == "vllm":
                entry["args"] = list(model.server_args)
            else:
                entry["settings"] = dataclasses.asdict(model.engine_settings)
                # The planner's vllm-neuron flags, shown in plan.json: `vllm serve` must take them too.
                entry["args"] = [model.spec.model, *model.server_args]
            models.append(entry)
    neuron = re.search(r":(\d+\.\d+\.\d+)-neuronx", versions.NEURON_VLLM_IMAGE)
    return {
        "gpu_vllm": versions.VLLM_VERSION,  # vllm/vllm-openai:v<this> runs the GPU Deployments
        "neuron_vllm": neuron.group(1) if neuron else versions.NEURON_VLLM_IMAGE,  # the Neuron image's vLLM
        "models": models,
        "gpu_engine_facts": gpu_engine_facts(),
    }


def gpu_engine_facts() -> dict:
    """The engine defaults sizing/ assumes for the pinned GPU image's vLLM (sizing/data/engine.yaml), per NVIDIA
    accelerator of the catalog: what the engine tests compare with that vLLM's own code."""
    from sizing.catalog import accelerators
    from sizing.memory import facts_for, gpu_class

    version, f = facts_for(None)
    gpus = {}
    for key, accel in accelerators().items():
        if accel.vendor == "nvidia":
            size = gpu_class(accel, f)
            gpus[key] = {"name": accel.name, "total_gib": accel.usable_gib,
                         "max_num_batched_tokens": f["max_num_batched_tokens"][size],
                         "max_num_seqs": f["max_num_seqs"][size]}
    return {"version": version, "gpu_memory_utilization": f["default_gpu_memory_utilization"],
            "block_size": f["block_size"], "cudagraph_in_budget": f["cudagraph_in_budget"], "gpus": gpus}


if __name__ == "__main__":
    json.dump(collect(), sys.stdout, indent=1)
