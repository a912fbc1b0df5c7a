"""The stack-file loader: every problem on one line naming the key, in the stack file's words.

Limits come from their own documentation, not from the code under test: AWS IAM quotas (role names 64 characters,
policy names 128), SQS (queue names 80), EKS (cluster names 100, letters, digits, '-' and '_'), the YAML spec (1.30
and 1.3 are the same float), Kubernetes (namespaces starting with kube- are reserved).
"""

from __future__ import annotations

import json

import pytest
import yaml

from config import ConfigError, load_stack_config
from config.names import RESERVED_NAMES, reserved_reason

TOKEN = {"llm-eks:hfToken": "hf_placeholder"}
SECRETS = {"llm-eks:hfToken"}
MODEL = {"name": "qwen", "model": "Qwen/Qwen3-1.7B", "maxModelLen": 8192}


def raw(models=None, **keys) -> dict[str, str]:
    out = {"aws:region": "us-east-1", **TOKEN, "llm-eks:models": json.dumps(models or [MODEL])}
    out.update({f"llm-eks:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in keys.items()})
    return out


def error(*args, **kwargs) -> str:
    with pytest.raises(ConfigError) as err:
        load_stack_config(*args, **kwargs)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# --- the stack name ----------------------------------------------------------------------------------------------


def test_a_stack_name_that_fits_every_aws_name_is_accepted():
    # IAM role names: at most 64 characters (IAM User Guide, "IAM and AWS STS quotas"); the node role is
    # KarpenterNodeRole-<stack>, 18 characters before the stack name: 46 are left.
    assert len("KarpenterNodeRole-") == 18
    load_stack_config(raw(), SECRETS, stack="s" * 46)


def test_a_stack_name_too_long_for_an_iam_role_name_fails_in_one_line():
    message = error(raw(), SECRETS, stack="s" * 47)
    assert message.startswith(f"stack name '{'s' * 47}'")
    assert "KarpenterNodeRole-<stack>" in message and "65 characters" in message and "64" in message
    assert "at most 46" in message


def test_every_policy_and_role_the_karpenter_data_names_fits_at_the_longest_stack_name():
    from pathlib import Path
    data = json.loads((Path(__file__).resolve().parents[2] / "components" / "data" / "karpenter-iam.json").read_text())
    stack = "s" * 46
    for section in data["_controller_policy_sections"].values():
        assert len(section["managed_policy_name"].replace("{cluster_name}", stack)) <= 128  # IAM policy names
    assert len(stack) <= 80 and len(stack) <= 100  # SQS queue name, EKS cluster name


@pytest.mark.parametrize("stack", ["my.stack", "-dash-first", "spaces here", "ünï"])
def test_a_stack_name_eks_or_sqs_would_refuse_fails(stack):
    message = error(raw(), SECRETS, stack=stack)
    assert f"stack name '{stack}'" in message and "letters, digits, '-' and '_'" in message


def test_the_program_rejects_a_long_stack_name_before_registering_anything():
    import pulumi

    from preview import harness

    config = raw()
    with pytest.raises(pulumi.RunError) as err:
        harness.run_stack("s" * 47, config, ["llm-eks:hfToken"])
    assert "KarpenterNodeRole-<stack>" in str(err.value)
    assert err.value.registered == []  # type: ignore[attr-defined]


# --- reserved model names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cpu", "kube-system", "chat-ui", "default", "kube-public", "kube-node-lease",
                                  "kuberay-system", "amazon-cloudwatch"])
def test_a_model_named_like_a_pool_or_namespace_of_the_project_fails(name):
    message = error(raw([{**MODEL, "name": name}]), SECRETS)
    assert message.startswith("llm-eks:models[0].name: is reserved")
    assert f"(got '{name}')" in message


def test_kube_prefixed_names_are_reserved_for_kubernetes():
    # Kubernetes docs, Namespaces: "Avoid creating namespaces with the prefix kube-, since it is reserved for
    # Kubernetes system namespaces."
    assert reserved_reason("kube-anything")
    assert "kube-" in error(raw([{**MODEL, "name": "kube-llm"}]), SECRETS)


def test_ordinary_names_are_free():
    assert reserved_reason("qwen3-1-7b") is None and reserved_reason("cpu-llm") is None
    assert {"cpu", "kube-system", "chat-ui"} <= set(RESERVED_NAMES)


# --- kubernetesVersion as a YAML number --------------------------------------------------------------------------


def test_an_unquoted_kubernetes_version_is_accepted():
    value = yaml.safe_load("kubernetesVersion: 1.35")["kubernetesVersion"]
    assert isinstance(value, float)  # YAML: a plain 1.35 is a float
    config = load_stack_config(raw(cluster={"kubernetesVersion": value}), SECRETS)
    assert config.cluster.kubernetes_version == "1.35"


def test_a_version_that_lost_its_trailing_zero_is_refused_not_guessed():
    # The YAML spec reads 1.30 as the float 1.3: the stack file's intent cannot be recovered, so it must be quoted.
    value = yaml.safe_load("kubernetesVersion: 1.30")["kubernetesVersion"]
    assert value == 1.3
    message = error(raw(cluster={"kubernetesVersion": value}), SECRETS)
    assert message.startswith("llm-eks:cluster.kubernetesVersion: ")
    assert "quote" in message and "1.30 and 1.3" in message and "1.35" in message


def test_a_quoted_version_outside_the_supported_ones_names_them():
    message = error(raw(cluster={"kubernetesVersion": "1.29"}), SECRETS)
    assert "llm-eks:cluster.kubernetesVersion" in message and "'1.35'" in message and "(got '1.29')" in message


# --- several problems, one line ----------------------------------------------------------------------------------


def test_an_unknown_key_is_named_even_when_another_error_comes_first():
    models = [{**MODEL, "maxModelLen": "lots", "acelerator": "nvidia"}]
    message = error(raw(models), SECRETS)
    assert message.startswith("llm-eks:models[0].acelerator: unknown key (did you mean accelerator?)")
    assert "llm-eks:models[0].maxModelLen" in message and "(got 'lots')" in message


def test_an_unknown_top_level_key_is_named_beside_a_missing_token():
    config = raw(clusterr={})
    del config["llm-eks:hfToken"]
    message = error(config, SECRETS)
    assert "llm-eks:clusterr: unknown key (did you mean cluster?)" in message
    assert "llm-eks:hfToken: is required" in message


def test_snake_case_keys_get_the_camel_case_spelling():
    message = error(raw([{**MODEL, "max_model_len": 8192}]), SECRETS)
    assert "llm-eks:models[0].max_model_len: unknown key (did you mean maxModelLen? Keys are camelCase.)" in message


def test_an_unknown_nested_key_with_no_near_match_lists_the_keys_there():
    message = error(raw(network={"vpcName": "x"}), SECRETS)
    assert "llm-eks:network.vpcName: unknown key (known keys here: " in message and "natGateways" in message


def test_many_problems_are_counted_past_the_first_few():
    models = [{**MODEL, "maxModelLen": "x", "concurrency": "y", "dtype": "z", "capacityType": "w",
               "accelerator": "v", "kvCacheDtype": "u"}]
    message = error(raw(models), SECRETS)
    assert message.endswith("(and 1 more)")


def test_the_token_is_checked_but_not_kept():
    config = load_stack_config(raw(), SECRETS)
    assert "hf_placeholder" not in config.model_dump_json()


def test_the_quantization_choices_are_sizings():
    from sizing.weights import QUANTIZATIONS

    for q in QUANTIZATIONS:
        assert load_stack_config(raw([{**MODEL, "quantization": q}]), SECRETS).models[0].quantization == q
    assert "llm-eks:models[0].quantization" in error(raw([{**MODEL, "quantization": "nf4"}]), SECRETS)


# --- region -------------------------------------------------------------------------------------------------------


def test_a_region_other_than_the_priced_one_warns_in_one_line():
    from config.loader import region_warning

    assert region_warning({"aws:region": "us-east-1"}) is None
    assert region_warning({}) is None  # Pulumi.yaml's default region
    warning = region_warning({"aws:region": "eu-west-1"})
    assert warning and "\n" not in warning
    assert "eu-west-1" in warning and "us-east-1" in warning and "prices" in warning


# --- public access from documentation ranges ---------------------------------------------------------------------
# RFC 5737 section 3 reserves 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24, RFC 3849 2001:db8::/32, for
# documentation: no client has such an address.

from config.loader import deploy_refusals, enforce_deployable  # noqa: E402

KEY = "llm-eks:cluster.publicAccessCidrs"


@pytest.mark.parametrize("cidr, rfc", [
    ("192.0.2.0/24", "RFC 5737"), ("198.51.100.0/24", "RFC 5737"), ("203.0.113.0/24", "RFC 5737"),
    ("203.0.113.7/32", "RFC 5737"), ("2001:db8::/32", "RFC 3849"), ("2001:db8:1::/48", "RFC 3849"),
])
def test_a_documentation_range_is_refused_in_one_line_naming_the_key(cidr, rfc):
    config = load_stack_config(raw(cluster={"publicAccessCidrs": ["10.20.0.0/16", cidr]}), SECRETS)
    with pytest.raises(ConfigError) as err:
        enforce_deployable(config, offline=False)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{KEY}[1]: {cidr} is a documentation range ({rfc})")


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "198.51.0.0/16", "192.0.3.0/24", "203.0.112.0/24", "2001:db9::/32"])
def test_real_ranges_and_ranges_around_documentation_ones_are_deployable(cidr):
    config = load_stack_config(raw(cluster={"publicAccessCidrs": [cidr]}), SECRETS)
    assert deploy_refusals(config) == [] and enforce_deployable(config, offline=False) == []


def test_a_private_only_endpoint_ignores_the_public_ranges():
    config = load_stack_config(raw(cluster={"endpointPublicAccess": False, "publicAccessCidrs": ["192.0.2.0/24"]}),
                               SECRETS)
    assert deploy_refusals(config) == []


def test_offline_the_refusal_is_a_warning_so_the_prod_example_still_previews():
    from preview.harness import read_stack_config, run_stack, stack_file

    config_raw, secrets = read_stack_config(stack_file("qwen-g6-prod"))
    config = load_stack_config(config_raw, set(secrets))
    with pytest.raises(ConfigError, match=r"^llm-eks:cluster\.publicAccessCidrs\[0\]: 203\.0\.113\.0/24 is a "):
        enforce_deployable(config, offline=False)  # what `pulumi preview` and `pulumi up` do
    run = run_stack("qwen-g6-prod", config_raw, secrets)  # the offline preview: every resource, and the warning
    assert run.resources
    assert any(w.startswith(f"{KEY}[0]: 203.0.113.0/24") and "`pulumi up` refuses this" in w for w in run.warnings)


# --- type errors say the expected shape (issue 21 item 8) ------------------------------------------------------------


@pytest.mark.parametrize("keys, words", [
    ({"replicas": 4}, "llm-eks:models[0].replicas: expected a mapping with keys min, max (got 4)"),
    ({"autoscaling": [1]}, "llm-eks:models[0].autoscaling: expected a mapping with keys waitingPerReplica, "
                           "kvCacheUsage, runningPerReplica"),
    ({"maxModelLen": "lots"}, "llm-eks:models[0].maxModelLen: must be a positive integer at most 10000000 (got 'lots')"),
    ({"concurrency": 0}, "llm-eks:models[0].concurrency: must be a positive integer at most 4096 (got 0)"),
    ({"accelerator": "h100"}, "llm-eks:models[0].accelerator: must be one of nvidia, neuron, any (got 'h100')"),
    ({"replicas": {"min": -1}}, "llm-eks:models[0].replicas.min: must be an integer from 0 to 100 (got -1)"),
    ({"model": "qwen3"}, "llm-eks:models[0].model: must be a Hugging Face id of the form org/name (e.g. "
                         "Qwen/Qwen3-1.7B) (got 'qwen3')"),
    ({"extraEngineArgs": "--enforce-eager"}, "llm-eks:models[0].extraEngineArgs: expected a list (got '--enforce-eager')"),
])
def test_a_wrong_type_names_the_expected_shape_not_pydantics_words(keys, words):
    message = error(raw([{**MODEL, **keys}]), SECRETS)
    assert message == words
    assert "Input should be" not in message and "instance of" not in message


def test_a_wrong_top_level_shape_lists_the_keys_there():
    message = error(raw(cluster="5"), SECRETS)
    assert message.startswith("llm-eks:cluster: expected a mapping with keys kubernetesVersion, ")
    assert message.endswith("(got '5')")
