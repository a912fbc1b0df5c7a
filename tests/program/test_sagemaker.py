"""target: sagemaker under the mock runtime: every request the program's resources make is held against botocore's
own service models for SageMaker and Application Auto Scaling (parameter names, types, enumerations, lengths,
patterns, ranges); the roles are least privilege; the token never leaves Secrets Manager; the LMI options are the
plan's; and the stack file refuses what SageMaker does not use."""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.model import Shape
from botocore.validate import ParamValidator

from config import ConfigError, load_stack_config
from plan.sagemaker import endpoint_name, plan_endpoints
from preview.harness import PLACEHOLDER_TOKEN, SECRET, StackRun, available_stacks, read_stack_config, run_stack, stack_file

STACK = "llama2-13b-sagemaker"
REPO = Path(__file__).resolve().parents[2]


@functools.cache
def _service(name: str):
    return botocore.session.get_session().get_service_model(name)


@functools.cache
def recorded(replicas: tuple[int, int] | None = None) -> tuple[StackRun, dict]:
    raw, secrets = read_stack_config(stack_file(STACK))
    if replicas:
        models = json.loads(raw["llm-eks:models"]) if isinstance(raw["llm-eks:models"], str) else raw["llm-eks:models"]
        models = copy.deepcopy(models)
        models[0]["replicas"] = {"min": replicas[0], "max": replicas[1]}
        raw = {**raw, "llm-eks:models": json.dumps(models)}
    return run_stack(STACK, raw, secrets), raw


def _pascal(value: Any, renames: dict[str, str]) -> Any:
    """Pulumi's camelCase inputs as the API's PascalCase parameters (renames where the provider's name differs)."""
    if isinstance(value, dict):
        return {renames.get(k, k[:1].upper() + k[1:]): _pascal(v, renames) for k, v in value.items()}
    if isinstance(value, list):
        return [_pascal(v, renames) for v in value]
    return value


@functools.cache
def _compiled(pattern: str | None) -> re.Pattern | None:
    """The service model's pattern, where Python's re reads it (a few use Java's \\p{...} classes: left out)."""
    try:
        return re.compile(pattern) if pattern else None
    except re.error:
        return None


def _enum_errors(value: Any, shape: Shape, path: str = "") -> list[str]:
    """botocore's validator checks types, required members, lengths and ranges; enumerations are checked here."""
    errors = []
    if shape.type_name == "structure" and isinstance(value, dict):
        for k, v in value.items():
            errors += _enum_errors(v, shape.members[k], f"{path}.{k}") if k in shape.members else []
    elif shape.type_name == "list" and isinstance(value, list):
        for i, v in enumerate(value):
            errors += _enum_errors(v, shape.member, f"{path}[{i}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for k, v in value.items():
            errors += _enum_errors(k, shape.key, f"{path} key") + _enum_errors(v, shape.value, f"{path}.{k}")
    elif shape.type_name == "string":
        if getattr(shape, "enum", None) and value not in shape.enum:
            errors.append(f"{path}: {value!r} not one of {shape.name}'s values")
        pattern = _compiled(shape.metadata.get("pattern"))
        if pattern and isinstance(value, str) and not pattern.fullmatch(value):
            errors.append(f"{path}: {value!r} does not match {pattern.pattern}")
    return errors


def assert_valid(service: str, operation: str, params: dict[str, Any]) -> None:
    shape = _service(service).operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), f"{operation}: {report.generate_report()}"
    assert _enum_errors(params, shape) == [], operation


def _inputs(run: StackRun, type_: str) -> dict[str, Any]:
    return run.one(type_).plain_inputs()


def test_every_request_is_valid_for_the_sagemaker_api():
    run, _ = recorded()
    model = _inputs(run, "aws:sagemaker/model:Model")
    container = _pascal(model["primaryContainer"], {})
    container["ModelDataSource"] = {"S3DataSource": container["ModelDataSource"]["S3DataSources"][0]}
    assert_valid("sagemaker", "CreateModel", {
        "ModelName": "llama-2-13b-chat-model", "PrimaryContainer": container,
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/exec",
        "EnableNetworkIsolation": model["enableNetworkIsolation"], "Tags": [{"Key": k, "Value": v} for k, v in
                                                                            model["tags"].items()]})
    config = _inputs(run, "aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    variants = _pascal(config["productionVariants"], {})
    for v in variants:
        v["ModelName"] = "llama-2-13b-chat-model"  # an output of the Model
    assert_valid("sagemaker", "CreateEndpointConfig", {"EndpointConfigName": "c", "ProductionVariants": variants})
    endpoint = _inputs(run, "aws:sagemaker/endpoint:Endpoint")
    assert_valid("sagemaker", "CreateEndpoint", {"EndpointName": endpoint["name"], "EndpointConfigName": "c"})
    assert variants[0]["InstanceType"] == "ml.g5.12xlarge" and variants[0]["InitialInstanceCount"] == 1


def test_autoscaling_requests_are_valid_and_track_the_planned_concurrency():
    run, raw = recorded((2, 6))
    target = _inputs(run, "aws:appautoscaling/target:Target")
    policy = _inputs(run, "aws:appautoscaling/policy:Policy")
    assert_valid("application-autoscaling", "RegisterScalableTarget", _pascal(target, {}))
    params = _pascal({k: v for k, v in policy.items() if k != "name"}, {})
    assert_valid("application-autoscaling", "PutScalingPolicy", {"PolicyName": "p", **params})
    endpoint = _inputs(run, "aws:sagemaker/endpoint:Endpoint")["name"]
    assert target["resourceId"] == f"endpoint/{endpoint}/variant/AllTraffic"
    assert (target["minCapacity"], target["maxCapacity"]) == (1, 3)  # two model copies per instance: 2-6 replicas
    config = load_stack_config(raw, {"llm-eks:hfToken"})
    (plan,) = plan_endpoints(config, "us-east-1")
    tracking = policy["targetTrackingScalingPolicyConfiguration"]
    assert tracking["targetValue"] == plan.concurrency_per_instance == 4  # 2 users per copy x 2 copies
    assert not run.by_type("aws:appautoscaling/target:Target") or recorded()[0].by_type(
        "aws:appautoscaling/target:Target") == []  # a fixed count (min = max) has no scaling


def test_the_execution_role_reads_one_prefix_and_pulls_one_repository():
    run, _ = recorded()
    policy = json.loads(run.one("aws:iam/rolePolicy:RolePolicy", "llama-2-13b-chat-exec").plain_inputs()["policy"])
    by_action = {}
    for s in policy["Statement"]:
        for a in [s["Action"]] if isinstance(s["Action"], str) else s["Action"]:
            by_action[a] = s
    assert by_action["s3:GetObject"]["Resource"].endswith("/models/meta-llama/Llama-2-13b-chat-hf/main/*")
    assert by_action["s3:ListBucket"]["Condition"] == {
        "StringLike": {"s3:prefix": ["models/meta-llama/Llama-2-13b-chat-hf/main/*"]}}
    assert not any(a.startswith("s3:") and a not in ("s3:GetObject", "s3:ListBucket") for a in by_action)
    assert by_action["ecr:BatchGetImage"]["Resource"] == (
        "arn:aws:ecr:us-east-1:763104351884:repository/djl-inference")
    wildcard = {a for a, s in by_action.items() if s["Resource"] == "*"}
    assert wildcard == {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}  # APIs without resource-level ARNs


def test_the_copy_may_read_only_its_secret_and_write_only_models():
    run, _ = recorded()
    policy = json.loads(run.one("aws:iam/rolePolicy:RolePolicy", "weights-copy").plain_inputs()["policy"])
    resources = {a: s["Resource"] for s in policy["Statement"]
                 for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert resources["secretsmanager:GetSecretValue"].startswith("arn:aws:secretsmanager:")
    assert resources["s3:PutObject"].endswith("/models/*")
    assert "*" not in resources.values()


def test_the_token_stays_in_secrets_manager():
    run, _ = recorded()
    version = run.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert version.plain_inputs()["secretString"] == SECRET  # a Pulumi secret, shown redacted
    env = _inputs(run, "aws:sagemaker/model:Model")["primaryContainer"]["environment"]
    assert not any("TOKEN" in k for k in env) and "HF_MODEL_ID" in env
    for r in run.resources:
        if r is not version:
            assert PLACEHOLDER_TOKEN not in json.dumps(r.plain_inputs(), default=str)  # never as plain text


def test_the_bucket_is_private_encrypted_and_goes_with_the_stack():
    run, _ = recorded()
    assert _inputs(run, "aws:s3/bucket:Bucket")["forceDestroy"] is True
    block = _inputs(run, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                          "restrictPublicBuckets"))
    sse = _inputs(run, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"


def test_the_endpoint_waits_for_the_weights_and_its_log_group():
    run, _ = recorded()
    model = run.one("aws:sagemaker/model:Model")
    assert run.depends_on(model, run.one("aws:lambda/invocation:Invocation"))
    endpoint = run.one("aws:sagemaker/endpoint:Endpoint")
    log_group = run.one("aws:cloudwatch/logGroup:LogGroup", "llama-2-13b-chat-logs")
    assert run.depends_on(endpoint, log_group)
    assert log_group.plain_inputs()["name"] == f"/aws/sagemaker/Endpoints/{endpoint.plain_inputs()['name']}"
    assert log_group.plain_inputs()["retentionInDays"] == 30
    invocation = json.loads(_inputs(run, "aws:lambda/invocation:Invocation")["input"])
    assert invocation["model"] == "meta-llama/Llama-2-13b-chat-hf" and invocation["prefix"] == (
        "models/meta-llama/Llama-2-13b-chat-hf/main")


def test_the_container_options_are_the_plans():
    run, raw = recorded()
    env = _inputs(run, "aws:sagemaker/model:Model")["primaryContainer"]["environment"]
    (plan,) = plan_endpoints(load_stack_config(raw, {"llm-eks:hfToken"}), "us-east-1")
    args = dict(zip(plan.model.plan.engine_args[::2], plan.model.plan.engine_args[1::2]))
    assert env["TENSOR_PARALLEL_DEGREE"] == args["--tensor-parallel-size"] == "2"  # seed: 2 of the 4 GPUs
    assert env["OPTION_MAX_MODEL_LEN"] == "4096"
    assert env["OPTION_MAX_ROLLING_BATCH_SIZE"] == args["--max-num-seqs"]  # LMI's own default would be 32
    assert env["HF_MODEL_ID"] == "/opt/ml/model"
    assert plan.model.plan.instance_type == "g5.12xlarge" and plan.copies_per_instance == 2
    image = _inputs(run, "aws:sagemaker/model:Model")["primaryContainer"]["image"]
    assert image == "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.36.0-lmi27.0.0-cu130"


@pytest.mark.parametrize("key, value, words", [
    ("llm-eks:chatUi", {"kind": "gradio"}, "chatUi: not used by target sagemaker"),
    ("llm-eks:network", {"cidr": "10.1.0.0/16"}, "network: not used by target sagemaker"),
])
def test_keys_a_sagemaker_stack_does_not_use_are_refused(key, value, words):
    raw, _ = read_stack_config(stack_file(STACK))
    with pytest.raises(ConfigError, match=words):
        load_stack_config({**raw, key: json.dumps(value)}, {"llm-eks:hfToken"})


def test_instance_types_belong_to_their_target():
    raw, _ = read_stack_config(stack_file(STACK))
    models = json.loads(raw["llm-eks:models"])
    models[0]["instanceType"] = "g5.12xlarge"
    with pytest.raises(ConfigError, match=r"models\[0\]\.instanceType: target sagemaker needs an ml\.\* instance"):
        load_stack_config({**raw, "llm-eks:models": json.dumps(models)}, {"llm-eks:hfToken"})
    models[0]["instanceType"] = "ml.g5.12xlarge"
    eks = {k: v for k, v in raw.items() if k != "llm-eks:target"}
    with pytest.raises(ConfigError, match=r"ml\.g5\.12xlarge is a SageMaker type; set target: sagemaker"):
        load_stack_config({**eks, "llm-eks:models": json.dumps(models)}, {"llm-eks:hfToken"})


def test_endpoint_names_fit_sagemaker():
    pattern = _service("sagemaker").shape_for("EndpointName").metadata["pattern"]
    for stack in ("llama2-13b-sagemaker", "a_very_long_stack_name_with_underscores_that_goes_on_and_on"):
        name = endpoint_name(stack, "llama-2-13b-chat-with-a-long-model-name-x")
        assert len(name) <= 63 and re.fullmatch(pattern, name), name


def test_the_preview_shows_the_endpoint_and_writes_it_to_plan_json(tmp_path):
    proc = subprocess.run([str(REPO / "venv" / "bin" / "python"), "-m", "preview", STACK, "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "ml.g5.12xlarge (sized as g5.12xlarge), TP 2, 2 model copies per instance" in out
    assert "TENSOR_PARALLEL_DEGREE=2" in out and "$7.090/h" in out
    doc = json.loads((tmp_path / STACK / "plan.json").read_text())
    assert doc["models"][0]["sagemaker"]["instance_type"] == "ml.g5.12xlarge"
    assert doc["cost"]["hourly_usd"] == pytest.approx(7.09)


def test_the_stack_is_listed_as_a_sagemaker_target():
    assert STACK in available_stacks("sagemaker") and STACK not in available_stacks("eks")
