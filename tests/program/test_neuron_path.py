"""The Inferentia2 path: Neuron pods' scheduler and toleration, the RayService built from the plan, the chat UIs,
observability, and pinned images everywhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from components import versions
from config.names import NEURON_SCHEDULER, NEURON_TAINT
from preview import render
from serving.settings import ENV_NAMES

from .conftest import recorded

REPO = Path(__file__).resolve().parents[2]


def pod_specs(node, where=""):
    """Every pod spec in a manifest, wherever it nests (Deployments, RayService head and worker groups)."""
    if isinstance(node, dict):
        if "containers" in node:
            yield where, node
        for key, value in node.items():
            yield from pod_specs(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from pod_specs(value, f"{where}[{i}]")


def test_every_neuron_pod_names_the_neuron_scheduler_and_tolerates_the_taint(manifests):
    for m in manifests:
        for where, pod in pod_specs(m):
            wants = any("aws.amazon.com/neuron" in (c.get("resources", {}).get("requests") or {}) for c in pod["containers"])
            if not wants:
                continue
            assert pod.get("schedulerName") == NEURON_SCHEDULER, (m["metadata"]["name"], where)
            assert any(t["key"] == NEURON_TAINT["key"] and t["effect"] == NEURON_TAINT["effect"]
                       for t in pod.get("tolerations", [])), (m["metadata"]["name"], where)


def test_every_image_is_pinned(manifests, run):
    images = [c["image"] for m in manifests for _, pod in pod_specs(m) for c in pod["containers"]]
    for rel in render.helm_releases(run):
        tag = (rel["values"].get("image") or {}).get("tag")
        if tag:
            images.append(f"chart:{tag}")
        assert re.fullmatch(r"\d+\.\d+\.\d+", rel["version"]), rel
    for image in images:
        assert ":" in image and not image.endswith(":latest"), image


def rayservice(stack):
    return next(m for m in render.manifests(recorded(stack)[2]) if m["kind"] == "RayService")


def test_llama3_8b_reproduces_seed_004_on_inf2_8xlarge():
    _, plans, _ = recorded("llama3-8b-inf2")
    plan = plans[0].plan
    assert plan.instance_type == "inf2.8xlarge" and plan.tensor_parallel_size == 2 and plan.accelerators == 1
    assert plan.max_num_seqs == 10


def test_rayservice_is_built_from_the_plan():
    for stack in ("llama3-8b-inf2", "llama2-13b-inf2"):
        _, plans, run = recorded(stack)
        p = plans[0]
        rs = rayservice(stack)
        assert rs["metadata"]["annotations"]["ray.io/initializing-timeout"]
        cluster = rs["spec"]["rayClusterConfig"]
        assert cluster["rayVersion"] == versions.RAY_VERSION and versions.RAY_VERSION in cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
        head = cluster["headGroupSpec"]
        assert head["rayStartParams"]["num-cpus"] == "0"
        assert head["template"]["spec"]["nodeSelector"] == {"karpenter.sh/nodepool": "cpu"}
        (worker,) = cluster["workerGroupSpecs"]
        assert (worker["minReplicas"], worker["maxReplicas"]) == (p.spec.replicas.min, p.spec.replicas.max)
        # KubeRay 1.7 trims surrounding quotes and JSON-parses this value (common/pod.go getResourcesMap).
        resources = worker["rayStartParams"]["resources"]
        assert json.loads(resources.strip("'\"` ")) == {"neuron_cores": p.plan.tensor_parallel_size}
        container = worker["template"]["spec"]["containers"][0]
        assert container["resources"]["requests"]["aws.amazon.com/neuron"] == str(p.plan.accelerators)
        assert p.plan.accelerators * 2 >= p.plan.tensor_parallel_size  # whole devices, 2 NeuronCores each
        env = {e["name"]: e.get("value") for e in container["env"]}
        # One set of names, from serving/settings.py, carrying the plan's numbers.
        assert env[ENV_NAMES["max_num_seqs"]] == str(p.plan.max_num_seqs)
        assert env[ENV_NAMES["max_model_len"]] == str(p.plan.max_model_len)
        assert env[ENV_NAMES["tensor_parallel_size"]] == str(p.plan.tensor_parallel_size)
        assert env[ENV_NAMES["model"]] == p.spec.model
        assert env["VLLM_ENGINE_READY_TIMEOUT_S"] and env["NEURON_COMPILED_ARTIFACTS"].startswith("/data/")
        assert not [k for k in env if k.startswith("NEURON_RT_")]  # Ray sets the visible cores for the actor
        assert "MAX_NUM_SEQ" not in env and "MAX_NUM_SEQS" not in env  # no unprefixed look-alikes
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/dev/shm", "/data", "/opt/llm-eks/serving"} <= mounts
        serve = yaml.safe_load(rs["spec"]["serveConfigV2"])
        (app,) = serve["applications"]
        assert app["import_path"] == "serving.ray_app:app"
        (deployment,) = app["deployments"]
        assert deployment["ray_actor_options"]["resources"] == {"neuron_cores": p.plan.tensor_parallel_size}
        assert deployment["max_ongoing_requests"] >= p.plan.max_num_seqs
        if p.spec.replicas.max > p.spec.replicas.min:
            assert deployment["autoscaling_config"]["max_replicas"] == p.spec.replicas.max
            assert cluster["enableInTreeAutoscaling"] is True


def test_the_serve_app_ships_as_the_repository_code():
    run = recorded("llama2-13b-inf2")[2]
    cm = next(m for m in render.manifests(run) if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "serve-app")
    for name, text in cm["data"].items():
        assert text == (REPO / "serving" / name).read_text()
    assert {"settings.py", "openai_api.py", "ray_app.py", "vllm_engine.py", "__init__.py"} <= set(cm["data"])


def test_llama2_13b_on_neuron_takes_the_planned_tp_and_gradio_talks_to_it():
    _, plans, run = recorded("llama2-13b-inf2")
    plan = plans[0].plan
    assert plan.instance_type.startswith("inf2.") and 40 % plan.tensor_parallel_size == 0
    manifests = render.manifests(run)
    gradio = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "gradio-chat")
    container = gradio["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    # the stack's one endpoint (components/router.py), whose router for this model discovers the Ray Serve proxies
    assert env["LLM_EKS_OPENAI_BASE_URL"] == "http://openai.llm-router.svc.cluster.local:8000/v1"
    assert env["LLM_EKS_MODEL"] == plans[0].spec.model
    assert container["image"] == versions.GRADIO_PYTHON_IMAGE
    assert f"gradio=={versions.GRADIO_VERSION}" in container["command"][-1]
    assert gradio["spec"]["template"]["spec"]["nodeSelector"] == {"karpenter.sh/nodepool": "cpu"}


def test_open_webui_serves_the_vllm_endpoints_without_ollama():
    for stack in ("qwen-g6", "llama3-8b-inf2"):
        run = recorded(stack)[2]
        values = next(r for r in render.helm_releases(run) if r["release"] == "open-webui")["values"]
        assert values["ollama"] == {"enabled": False} and values["pipelines"] == {"enabled": False}
        assert values["openaiBaseApiUrls"] == [run.exports["openai_base_url"]]  # one endpoint, every model
        assert len(values["openaiApiKeys"]) == len(values["openaiBaseApiUrls"])


def test_cloudwatch_observability_with_neuron_monitor_on_the_seed_004_stack():
    run = recorded("llama3-8b-inf2")[2]
    addon = next(r for r in run.by_type("aws:eks/addon:Addon") if r.inputs["addonName"] == "amazon-cloudwatch-observability")
    assert addon.inputs["podIdentityAssociations"][0]["serviceAccount"] == "cloudwatch-agent"
    assert not [r for r in recorded("qwen-g6")[2].by_type("aws:eks/addon:Addon")
                if r.inputs["addonName"] == "amazon-cloudwatch-observability"]


def test_pins_match_what_the_tests_install():
    dev = (REPO / "requirements-dev.txt").read_text()
    assert f"gradio=={versions.GRADIO_VERSION}" in dev and f"openai=={versions.OPENAI_CLIENT_VERSION}" in dev
