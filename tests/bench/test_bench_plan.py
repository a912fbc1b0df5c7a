"""The benchmark's prediction is the plan's, for every shipped stack: the concurrency the stack file asked of the
whole deployment (not multiplied by the replicas again), the batch cap over the replicas the program deploys, and
the nodes (zone spread included) and $/h the plan priced."""

from __future__ import annotations

import re

import pytest
import yaml

from bench.__main__ import parser, targets
from preview.harness import available_stacks, stack_file
from tests.program.conftest import recorded


def _deployed_replicas_and_batch(manifests, model: str) -> tuple[int, int, dict]:
    """Replicas and per-replica batch cap as the rendered objects state them, and the pod template."""
    for m in manifests:
        if m["kind"] == "Deployment" and m["metadata"]["name"] == model:
            scaled = [s for s in manifests if s["kind"] == "ScaledObject" and s["metadata"]["namespace"] == model]
            # a model that scales to zero (minReplicaCount 0) is woken by the benchmark: one replica serves it
            replicas = max(1, scaled[0]["spec"]["minReplicaCount"]) if scaled else m["spec"]["replicas"]
            args = m["spec"]["template"]["spec"]["containers"][0]["args"]
            return replicas, int(args[args.index("--max-num-seqs") + 1]), m["spec"]["template"]
        if m["kind"] == "RayService" and m["metadata"]["name"] == model:
            group = m["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
            env = {e["name"]: e.get("value") for e in group["template"]["spec"]["containers"][0]["env"]}
            return group["replicas"], int(env["LLM_EKS_MAX_NUM_SEQS"]), group["template"]
    raise LookupError(model)


@pytest.mark.parametrize("stack", available_stacks("eks"))
def test_the_prediction_is_the_plans(stack):
    from preview import render

    asked = {m["name"]: m for m in yaml.safe_load(stack_file(stack).read_text())["config"]["llm-eks:models"]}
    _, plans, run = recorded(stack)
    manifests = render.manifests(run)
    by_name = {p.name: p for p in plans}
    for target in targets(parser().parse_args([stack])):
        model = target.label
        replicas, batch, template = _deployed_replicas_and_batch(manifests, model)
        assert target.predicted == asked[model]["concurrency"], model
        assert target.cap == batch * replicas
        assert target.info["replicas"] == replicas
        nodes = target.info["nodes"]
        spread = template["spec"].get("topologySpreadConstraints") or []
        if spread and spread[0]["whenUnsatisfiable"] == "DoNotSchedule" and spread[0]["maxSkew"] == 1:
            zones = by_name[model].plan.spread_zones
            assert nodes >= min(replicas, zones)  # maxSkew 1 puts the replicas in min(replicas, zones) zones
        assert target.hourly_usd == pytest.approx(nodes * by_name[model].plan.hourly_usd)
        if by_name[model].scales_to_zero:  # through the interceptor: the ExternalName Service in the model's namespace
            wake = next(m for m in manifests if m["kind"] == "Service" and m["spec"].get("type") == "ExternalName"
                        and m["metadata"]["namespace"] == model)
            assert target.url == (f"http://{wake['metadata']['name']}.{model}.svc.cluster.local:"
                                  f"{wake['spec']['ports'][0]['port']}/v1")
        else:
            assert target.url == by_name[model].endpoint and re.search(r":\d+/v1$", target.url)


@pytest.mark.parametrize("stack", ["qwen-g6-prod", "llama2-13b-g5"])
def test_two_replica_stacks_predict_the_deployments_four_not_eight(stack):
    (target,) = targets(parser().parse_args([stack]))
    assert target.predicted == 4 and target.info["replicas"] == 2
