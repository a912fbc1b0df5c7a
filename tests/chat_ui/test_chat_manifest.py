"""The Gradio app as the program deploys it: the manifest's variables are the ones the app reads (one contract,
chat_ui/settings.py), and a change to the app's code changes the pod template, so the Deployment rolls it out
(a Deployment does not restart pods when a ConfigMap they mount changes: Kubernetes docs, "ConfigMaps", mounted
ConfigMaps are updated in place)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from chat_ui.settings import ENV_NAMES, Settings, settings_from_env
from components import gradio_ui
from plan.stack import plan_stack
from preview import render
from tests.program.conftest import recorded

GRADIO_STACK = "llama2-13b-inf2"  # the shipped stack with chatUi.kind gradio
REPO = Path(__file__).resolve().parents[2]


def _objects():
    manifests = render.manifests(recorded(GRADIO_STACK)[2])
    deployment = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "gradio-chat")
    config_map = next(m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "gradio-app")
    return deployment, config_map


def test_the_pod_template_carries_the_hash_of_the_code_it_mounts():
    deployment, config_map = _objects()
    expected = hashlib.sha256(json.dumps(config_map["data"], sort_keys=True).encode()).hexdigest()
    assert deployment["spec"]["template"]["metadata"]["annotations"][gradio_ui.APP_HASH_ANNOTATION] == expected


def test_a_change_to_the_app_changes_the_pod_template(tmp_path, monkeypatch):
    args = ("http://m.m.svc.cluster.local:8000/v1", "org/model", "title")
    before = gradio_ui.deployment_spec(*args, gradio_ui.app_files())
    for name, text in gradio_ui.app_files().items():
        (tmp_path / name).write_text(text)
    (tmp_path / "gradio_app.py").write_text((tmp_path / "gradio_app.py").read_text() + "\n# a one-line change\n")
    monkeypatch.setattr(gradio_ui, "SOURCE", tmp_path)
    after = gradio_ui.deployment_spec(*args, gradio_ui.app_files())
    assert before["template"]["metadata"] != after["template"]["metadata"]


def test_the_config_map_carries_every_module_the_app_imports():
    _, config_map = _objects()
    files = config_map["data"]
    for name, text in files.items():
        for module in re.findall(r"^from chat_ui\.(\w+) import", text, flags=re.M):
            assert f"{module}.py" in files, (name, module)
    assert "settings.py" in files


def test_the_app_reads_back_exactly_what_the_manifest_sets():
    deployment, _ = _objects()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    settings = settings_from_env(env)
    config, _, _ = recorded(GRADIO_STACK)
    target = plan_stack(config).chat_targets[0]  # what the program hands the component
    assert (settings.base_url, settings.model) == (target.endpoint, target.model)
    assert container["ports"][0]["containerPort"] == settings.server_port
    ours = {k for k in env if k.startswith("LLM_EKS_")}
    assert ours <= set(ENV_NAMES.values())


def test_every_setting_has_one_variable_and_no_one_else_spells_them():
    assert set(ENV_NAMES) == set(Settings.__dataclass_fields__)
    assert len(set(ENV_NAMES.values())) == len(ENV_NAMES)
    for path in ("chat_ui/gradio_app.py", "components/gradio_ui.py"):
        assert "LLM_EKS_" not in (REPO / path).read_text(encoding="utf-8"), path
