"""make preview: bad stack files fail in one line naming the key, before any resource; good ones write files fast."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pulumi
import pytest
import yaml

from preview import harness
from preview.__main__ import main

REPO = Path(__file__).resolve().parents[2]
TOKEN = "  llm-eks:hfToken:\n    secure: v1:placeholder\n"
MODEL = """  llm-eks:models:
    - name: qwen
      model: Qwen/Qwen3-1.7B
      maxModelLen: 8192
"""

NEURON = """  llm-eks:models:
    - name: llama
      model: meta-llama/Meta-Llama-3-8B-Instruct
      maxModelLen: 4096
      accelerator: neuron
"""

BAD = {
    "unknown key": (TOKEN + MODEL + "      acelerator: nvidia\n", "llm-eks:models[0].acelerator"),
    "wrong type": (TOKEN + MODEL.replace("8192", "lots"), "llm-eks:models[0].maxModelLen"),
    "unknown model": (TOKEN + MODEL.replace("Qwen/Qwen3-1.7B", "nobody/no-such-model"), "llm-eks:models[0].model"),
    "instance too small": (TOKEN + MODEL.replace("Qwen/Qwen3-1.7B", "Qwen/Qwen3-32B") + "      instanceType: g6.xlarge\n",
                           "llm-eks:models[0].instanceType"),
    "missing token": (MODEL, "llm-eks:hfToken"),
    "plain-text token": ("  llm-eks:hfToken: hf_abc\n" + MODEL, "llm-eks:hfToken"),
    "unknown top-level key": (TOKEN + MODEL + "  llm-eks:clusterr: {}\n", "llm-eks:clusterr"),
    "context beyond the model": (TOKEN + MODEL.replace("8192", "100000"), "llm-eks:models[0].maxModelLen"),
    "bad enum": (TOKEN + MODEL + "  llm-eks:network:\n    natGateways: two\n", "llm-eks:network.natGateways"),
    "no models": (TOKEN, "llm-eks:models"),
    # extraEngineArgs repeating a flag the plan sets, in each spelling vLLM's parser takes
    "engine flag=value": (TOKEN + MODEL + "      extraEngineArgs: ['--tensor-parallel-size=4']\n",
                          "llm-eks:models[0].extraEngineArgs: --tensor-parallel-size is set by the plan "
                          "(tensorParallelSize: 1); set tensorParallelSize instead"),
    "engine flag value": (TOKEN + MODEL + "      extraEngineArgs: ['--tensor-parallel-size', '4']\n",
                          "--tensor-parallel-size is set by the plan (tensorParallelSize: 1)"),
    "engine underscores": (TOKEN + MODEL + "      extraEngineArgs: ['--tensor_parallel_size', '4']\n",
                           "--tensor-parallel-size is set by the plan (tensorParallelSize: 1)"),
    "engine short alias": (TOKEN + MODEL + "      extraEngineArgs: ['-tp', '4']\n",
                           "--tensor-parallel-size is set by the plan (tensorParallelSize: 1)"),
    "engine max-model-len": (TOKEN + MODEL + "      extraEngineArgs: ['--max_model_len=4096']\n",
                             "--max-model-len is set by the plan (maxModelLen: 8192); set maxModelLen instead"),
    "engine port": (TOKEN + MODEL + "      extraEngineArgs: ['--port', '9000']\n",
                    "llm-eks:models[0].extraEngineArgs: --port is set by the model server"),
    "engine flag and value in one item": (TOKEN + MODEL + "      extraEngineArgs: ['--enforce-eager', '--max-num-seqs 8']\n",
                                          "llm-eks:models[0].extraEngineArgs: '--max-num-seqs 8' holds a space"),
    # names the project uses itself
    "model named cpu": (TOKEN + MODEL.replace("name: qwen", "name: cpu"), "llm-eks:models[0].name: is reserved"),
    "model named kube-system": (TOKEN + MODEL.replace("name: qwen", "name: kube-system"),
                                "llm-eks:models[0].name: is reserved"),
    "model named chat-ui": (TOKEN + MODEL.replace("name: qwen", "name: chat-ui"), "llm-eks:models[0].name: is reserved"),
    # vLLM has no on-the-fly int4: the key is quantization, whatever sizing says about it
    "int4 of a 16-bit checkpoint": (TOKEN + MODEL + "      quantization: int4\n", "llm-eks:models[0].quantization: "),
    # On Neuron these settings are not deployed (vllm-neuron has no such knobs): refused, not silently ignored
    "neuron kvCacheDtype": (TOKEN + NEURON + "      kvCacheDtype: fp8\n", "llm-eks:models[0].kvCacheDtype: "),
    "neuron gpuMemoryUtilization": (TOKEN + NEURON + "      gpuMemoryUtilization: 0.8\n",
                                    "llm-eks:models[0].gpuMemoryUtilization: "),
    "neuron extraEngineArgs": (TOKEN + NEURON + "      extraEngineArgs: ['--enforce-eager']\n",
                               "llm-eks:models[0].extraEngineArgs: not deployed with Ray Serve on Neuron"),
    "kubernetesVersion 1.30 as a number": (TOKEN + MODEL + "  llm-eks:cluster:\n    kubernetesVersion: 1.30\n",
                                           "llm-eks:cluster.kubernetesVersion: "),
    "unknown key beside a bad value": (TOKEN + MODEL.replace("8192", "lots") + "      acelerator: nvidia\n",
                                       "llm-eks:models[0].acelerator: unknown key (did you mean accelerator?)"),
}


@pytest.fixture
def stacks_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "STACKS", tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_stack_file_fails_in_one_line_naming_the_key(case, stacks_dir, tmp_path, capsys):
    body, key = BAD[case]
    (stacks_dir / "Pulumi.bad.yaml").write_text("config:\n  aws:region: us-east-1\n" + body)
    out = tmp_path / "build"
    code = main(["bad", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Pulumi.bad.yaml: " in lines[0]  # the file first, then the key
    assert key in lines[0], lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists()  # nothing written


def test_the_program_itself_fails_before_registering_anything(stacks_dir):
    body, key = BAD["instance too small"]
    (stacks_dir / "Pulumi.bad.yaml").write_text("config:\n" + body)
    with pytest.raises(pulumi.RunError) as err:
        harness.run_stack("bad")
    assert key in str(err.value)
    assert err.value.registered == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("text, message", [("config: [unclosed", "not valid YAML"), ("- a list", "config:")])
def test_unreadable_stack_files(text, message, stacks_dir, capsys):
    (stacks_dir / "Pulumi.bad.yaml").write_text(text)
    assert main(["bad"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_yaml_error_gives_the_parsers_reason_once(stacks_dir, tmp_path, capsys):
    # A model's keys indented one space less than its first key: line 5 is not part of the mapping.
    body = "config:\n  llm-eks:models:\n    - name: qwen\n      model: Qwen/Qwen3-1.7B\n     maxModelLen: 8192\n"
    (stacks_dir / "Pulumi.bad.yaml").write_text(body)
    try:
        yaml.safe_load(body)
    except yaml.YAMLError as exc:  # what PyYAML itself says the problem is
        reason = exc.problem  # type: ignore[attr-defined]
    assert main(["bad", "--out", str(tmp_path / "build")]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "Pulumi.bad.yaml: not valid YAML: line 5" in lines[0]
    assert lines[0].count(reason) == 1 and lines[0].count("Pulumi.bad.yaml") == 1
    assert not (tmp_path / "build").exists()


def test_a_region_other_than_the_priced_one_warns_once_and_still_previews(stacks_dir, tmp_path, capsys):
    (stacks_dir / "Pulumi.eu.yaml").write_text("config:\n  aws:region: eu-west-1\n" + TOKEN + MODEL)
    assert main(["eu", "--out", str(tmp_path), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "warning" in err[0] and "eu-west-1" in err[0] and "us-east-1" in err[0] and "prices" in err[0]
    assert (tmp_path / "eu" / "plan.json").exists()


def test_the_program_warns_about_the_region_through_pulumi(stacks_dir):
    (stacks_dir / "Pulumi.eu.yaml").write_text("config:\n  aws:region: eu-west-1\n" + TOKEN + MODEL)
    run = harness.run_stack("eu")
    assert any("eu-west-1" in w and "us-east-1" in w for w in run.warnings)


def test_extra_engine_args_that_repeat_nothing_pass(stacks_dir, tmp_path):
    (stacks_dir / "Pulumi.extra.yaml").write_text(
        "config:\n" + TOKEN + MODEL + "      extraEngineArgs: ['--enforce-eager', '--max-num-batched-tokens=4096']\n")
    assert main(["extra", "--out", str(tmp_path), "--quiet"]) == 0
    deployment = yaml.safe_load(next((tmp_path / "extra" / "manifests").glob("deployment-*.yaml")).read_text())
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-2:] == ["--enforce-eager", "--max-num-batched-tokens=4096"]


# --- reproducible output -----------------------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("stack", ["llama3-8b-inf2", "qwen-g6-prod"])
def test_two_previews_of_a_stack_write_identical_trees(stack, tmp_path):
    assert main([stack, "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main([stack, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert sorted(a) == sorted(b)
    assert [name for name in a if a[name] != b[name]] == []
    text = b"".join(a.values()).decode()
    assert str(tmp_path) not in text  # no output path inside the files


def test_file_names_come_from_the_objects_not_the_order_they_registered_in(tmp_path):
    assert main(["qwen-g6", "--out", str(tmp_path), "--quiet"]) == 0
    names = {p.name for p in (tmp_path / "qwen-g6" / "manifests").iterdir()}
    assert "nodepool-cpu.yaml" in names and "storageclass-gp3-encrypted.yaml" in names
    assert all(not n[0].isdigit() for n in names)


def test_a_manifest_of_a_removed_resource_does_not_linger(tmp_path):
    manifests = tmp_path / "qwen-g6" / "manifests"
    assert main(["qwen-g6", "--out", str(tmp_path), "--quiet"]) == 0
    before = _tree(tmp_path)
    (manifests / "deployment-old-model-old-model.yaml").write_text("kind: Deployment\n")  # from an earlier plan
    (manifests / "03-namespace-qwen.yaml").write_text("kind: Namespace\n")  # the old numbered naming
    assert main(["qwen-g6", "--out", str(tmp_path), "--quiet"]) == 0
    assert _tree(tmp_path) == before


def test_the_preview_prints_quantities_and_every_rejected_instance(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "preview", "qwen3-8b-auto", "--out", str(tmp_path)], cwd=REPO,
                         env=env, capture_output=True, text=True, check=True).stdout
    plan = json.loads((tmp_path / "qwen3-8b-auto" / "plan.json").read_text())["models"][0]
    requests = plan["resources"]["requests"]
    assert f"cpu={requests['cpu']}" in out and f"memory={requests['memory']}" in out
    assert "{'cpu'" not in out and "'memory':" not in out  # not a Python dict
    rejected = plan["rejected"]
    assert len(rejected) > 6  # more than the old short list held
    assert f"{len(rejected)} instance type(s) rejected" in out
    for r in rejected:
        assert r["instance_type"] in out
    assert "reasons in plan.json" not in out


def test_every_namespace_and_pool_the_project_creates_is_reserved(run, plans):
    """A model may not take a name the program gives its own namespaces, NodePools and node classes."""
    from config.names import reserved_reason

    models = {p.name for p in plans}
    owned = set()
    for r in run.resources:
        inputs = r.plain_inputs()
        if r.type in ("kubernetes:core/v1:Namespace", "kubernetes:karpenter.sh/v1:NodePool",
                      "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"):
            owned.add(inputs["metadata"]["name"])
        elif r.type == "kubernetes:helm.sh/v3:Release":
            owned.add(inputs.get("namespace") or "default")
        elif isinstance(inputs.get("metadata"), dict) and inputs["metadata"].get("namespace"):
            owned.add(inputs["metadata"]["namespace"])
    assert owned - models  # the program does create names of its own
    assert [n for n in sorted(owned - models) if not reserved_reason(n)] == []


def test_missing_stack_names_the_ones_that_exist(capsys):
    assert main(["no-such-stack"]) == 2
    err = capsys.readouterr().err
    assert "no such stack file" in err and "qwen-g6" in err


def _seconds(cmd: list[str]) -> float:
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        best = min(best, time.perf_counter() - start)
    return best


def test_make_preview_writes_plan_and_manifests_within_twice_the_import_time(tmp_path):
    preview = _seconds([sys.executable, "-m", "preview", "qwen-g6", "--out", str(tmp_path)])
    plan = json.loads((tmp_path / "qwen-g6" / "plan.json").read_text())
    assert plan["models"][0]["instance_type"] == "g6.2xlarge"
    assert {r["type"] for r in plan["resources"]} >= {"eks:index:Cluster", "kubernetes:apps/v1:Deployment"}
    assert len(list((tmp_path / "qwen-g6" / "manifests").glob("*.yaml"))) >= 10
    # Importing the four SDKs means loading the modules a program uses (their top-level packages load lazily).
    imports = _seconds([sys.executable, "-c", (
        "import pulumi, pulumi_aws as aws, pulumi_eks as eks, pulumi_kubernetes as k8s\n"
        "aws.ec2.Vpc, aws.iam.Role, aws.eks.Addon, aws.sqs.Queue, aws.cloudwatch.EventRule, aws.s3.Bucket, eks.Cluster\n"
        "k8s.core.v1.Namespace, k8s.apps.v1.Deployment, k8s.batch.v1.Job, k8s.helm.v3.Release, k8s.apiextensions.CustomResource\n"
        "k8s.policy.v1.PodDisruptionBudget, k8s.storage.v1.StorageClass")])
    assert preview <= 2 * imports, f"preview {preview:.2f} s, imports {imports:.2f} s"


# --- the first run -------------------------------------------------------------------------------------------------


def _make_dry_run(target: str, tmp_path: Path) -> str:
    """What `make <target>` would run on a machine with no virtualenv yet (make -n, into an empty VENV)."""
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    done = subprocess.run(["make", "-n", target, f"VENV={venv}", "PYTHON=python3"], cwd=REPO, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_preview_installs_only_the_runtime_requirements_with_progress(tmp_path):
    commands = _make_dry_run("preview", tmp_path)
    installs = [line for line in commands.splitlines() if "pip install" in line]
    assert len(installs) == 1 and "-r requirements.txt" in installs[0]
    assert "requirements-dev.txt" not in commands
    assert "--quiet" not in installs[0] and " -q " not in installs[0]  # pip's per-package lines are the progress
    assert "== installing" in commands


def test_the_runtime_requirements_hold_no_test_tools():
    names = {line.split("==")[0].strip().lower() for line in (REPO / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith(("#", "-"))}
    assert names >= {"pulumi", "pulumi-aws", "pulumi-eks", "pulumi-kubernetes", "pydantic", "pyyaml", "rich"}
    assert not names & {"pytest", "hypothesis", "gradio", "selenium", "kubernetes-validate", "openai"}


def test_make_test_installs_the_dev_requirements_on_top(tmp_path):
    commands = _make_dry_run("venv", tmp_path)  # the runtime set alone: what `pulumi up` needs
    assert "requirements-dev.txt" not in commands
    # make test, without the engines' virtualenvs (another target): runtime set first, then the test tools
    commands = subprocess.run(["make", "-n", "test", f"VENV={tmp_path / 'venv'}", "ENGINE_STAMPS="], cwd=REPO,
                              capture_output=True, text=True).stdout
    assert "-r requirements.txt" in commands and "-r requirements-dev.txt" in commands
    assert commands.index("-r requirements.txt") < commands.index("-r requirements-dev.txt")


@pytest.mark.parametrize("body, line", [
    # A key without its ':' (PyYAML notices it on the next line), an unclosed quote, an unclosed '[': each is
    # reported on the line the user got wrong, counted as an editor counts (the first line is 1).
    ("config:\n  llm-eks:models:\n    - name: qwen\n      model Qwen/Qwen3-1.7B\n      maxModelLen: 8192\n", 4),
    ("config:\n  llm-eks:models:\n    - name: \"qwen\n      model: Qwen/Qwen3-1.7B\n", 3),
    ("config:\n  llm-eks:models:\n    - name: qwen\n      replicas: [1, 2\n      maxModelLen: 8192\n", 4),
])
def test_a_yaml_error_names_the_line_of_the_mistake(body, line, stacks_dir, tmp_path, capsys):
    (stacks_dir / "Pulumi.bad.yaml").write_text(body)
    assert main(["bad", "--out", str(tmp_path / "build")]) == 2
    assert f"Pulumi.bad.yaml: not valid YAML: line {line}, column " in capsys.readouterr().err


def test_the_preview_prints_every_stack_output_the_readme_lists(tmp_path):
    # The README's "Stack outputs" table, plan.json's exports and the printed table name the same outputs.
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("**Stack outputs**", 1)[1].split("\n\n", 2)[1]
    listed = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "250"}
    out = subprocess.run([sys.executable, "-m", "preview", "qwen-g6", "--out", str(tmp_path)], cwd=REPO,
                         env=env, capture_output=True, text=True, check=True).stdout
    exports = json.loads((tmp_path / "qwen-g6" / "plan.json").read_text())["exports"]
    assert sorted(listed) == sorted(exports)
    table = out.split("stack outputs (pulumi stack output)", 1)[1]
    for name in listed:
        assert f" {name} " in table
    assert exports["prometheus_url"] in table and exports["grafana"] in table
