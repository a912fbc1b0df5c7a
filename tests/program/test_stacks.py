"""The program, run for every stack under mocks: the graph, the scheduling contract, the plan, and secrets."""

from __future__ import annotations

import json
from pathlib import Path


from components import versions
from components.karpenter import IAM_DATA, substitute
from config.names import NEURON_SCHEDULER
from plan.stack import plan_stack
from preview import render
from preview.harness import PLACEHOLDER_TOKEN, SECRET, available_stacks
from sizing import catalog
from sizing.memory import facts_for

from .conftest import recorded

NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
RELEASE = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def test_every_stack_file_is_exercised():
    assert set(available_stacks()) >= {"qwen-g6", "llama32-1b-g5", "llama2-13b-g5", "qwen3-8b-auto", "qwen-g6-prod"}


def test_program_registers_the_whole_platform(run):
    types = {r.type for r in run.resources}
    for required in ("aws:ec2/vpc:Vpc", "eks:index:Cluster", "aws:eks/nodeGroup:NodeGroup", "aws:sqs/queue:Queue",
                     "aws:eks/podIdentityAssociation:PodIdentityAssociation", NODECLASS, NODEPOOL, RELEASE):
        assert required in types
    assert run.exports["kubeconfig"] == SECRET


def test_destroy_order_keeps_karpenter_alive_until_its_nodes_are_gone(run):
    """Reverse dependency order: model pods, NodePools, EC2NodeClasses, karpenter, karpenter-crd, system nodes."""
    crd = run.one(RELEASE, "karpenter-crd")
    controller = run.one(RELEASE, "karpenter-controller")
    nodes = run.one("aws:eks/nodeGroup:NodeGroup")
    assert run.depends_on(crd, nodes)
    assert run.depends_on(controller, crd)
    classes = run.by_type(NODECLASS)
    pools = run.by_type(NODEPOOL)
    assert classes and pools
    for c in classes:
        assert run.depends_on(c, controller)
    for p in pools:
        assert any(run.depends_on(p, c) for c in classes)
    for d in run.by_type(DEPLOYMENT):
        if "nvidia.com/gpu" in json.dumps(d.inputs):
            assert any(run.depends_on(d, p) for p in pools), d.name
    assert not run.depends_on(nodes, controller)  # no cycle


def _pod_templates(manifests):
    for m in manifests:
        spec = m.get("spec") or {}
        template = (spec.get("template") or {}).get("spec")
        if template and "containers" in template:
            yield m, template


def test_every_accelerator_pod_tolerates_and_selects_a_pool_that_offers_it(manifests):
    pools = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "NodePool"}
    for m, pod in _pod_templates(manifests):
        for container in pod["containers"]:
            requests = container.get("resources", {}).get("requests", {})
            accel = [k for k in requests if k in ("nvidia.com/gpu", "aws.amazon.com/neuron")]
            if not accel:
                continue
            pool = pools[pod["nodeSelector"]["karpenter.sh/nodepool"]]
            taints = pool["spec"]["template"]["spec"]["taints"]
            for taint in taints:
                assert any(t["key"] == taint["key"] and t["effect"] == taint["effect"]
                           and (t.get("operator") == "Exists" or t.get("value") == taint.get("value"))
                           for t in pod.get("tolerations", [])), (m["metadata"]["name"], taint)
            assert accel[0] in pool["spec"]["limits"]
            if accel[0] == "aws.amazon.com/neuron":
                assert pod.get("schedulerName") == NEURON_SCHEDULER


def test_pools_launch_only_what_the_plan_allows(plans, manifests):
    pools = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "NodePool"}
    for p in plans:
        pool = pools[p.name]["spec"]
        types = [r for r in pool["template"]["spec"]["requirements"] if r["key"] == "node.kubernetes.io/instance-type"]
        assert types == [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [p.plan.instance_type]}]
        inst = catalog.instance(p.plan.instance_type)
        gpus = int(pool["limits"][p.plan.resources.accelerator_resource])
        assert gpus % inst.count == 0 and gpus >= inst.count  # whole nodes only
        surge_replicas = p.spec.replicas.max + p.rollout_surge
        assert gpus // inst.count == -(-surge_replicas // p.plan.replicas_per_node)
        assert pool["disruption"]["consolidationPolicy"] == "WhenEmpty"


def test_model_servers_carry_the_plan(plans, manifests):
    deployments = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Deployment"}
    for p in plans:
        if p.server != "vllm":
            continue
        d = deployments[p.name]
        container = d["spec"]["template"]["spec"]["containers"][0]
        args = container["args"]
        # The weights cache's s3:// path served under the Hub id (plan/weights.py), or the Hub id itself.
        assert args[0] == (f"s3://$(WEIGHTS_BUCKET)/{p.weights.prefix}" if p.weights.cached else p.spec.model)
        if p.weights.cached:
            assert args[args.index("--served-model-name") + 1] == p.spec.model
        for flag, value in zip(p.plan.engine_args[::2], p.plan.engine_args[1::2]):
            assert args[args.index(flag) + 1] == value
        assert container["resources"]["requests"]["nvidia.com/gpu"] == str(p.plan.accelerators)
        assert container["resources"]["limits"]["nvidia.com/gpu"] == str(p.plan.accelerators)
        assert container["image"] == versions.VLLM_IMAGE
        shm = next(v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "dshm")
        assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": f"{p.plan.resources.shm_mib}Mi"}
        startup = container["startupProbe"]
        # The cold-start budget's load and engine start, with its margin (plan/cold_start.py).
        assert startup["periodSeconds"] * startup["failureThreshold"] >= p.cold_start.startup_probe_s
        if p.spec.replicas.max > p.spec.replicas.min:
            assert "replicas" not in d["spec"]  # KEDA owns the count; `pulumi up` must not reset it
        else:
            assert p.spec.replicas.min <= d["spec"]["replicas"] <= p.spec.replicas.max


def test_qwen_g6_done_when():
    config, plans, run = recorded("qwen-g6")
    deployment = next(m for m in render.manifests(run) if m["kind"] == "Deployment"
                      and m["metadata"]["name"] == plans[0].name)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][container["args"].index("--max-model-len") + 1] == "8192"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    pool = next(m for m in render.manifests(run) if m["kind"] == "NodePool" and m["metadata"]["name"] == "qwen3-1-7b")
    assert pool["spec"]["template"]["spec"]["requirements"][0]["values"] == ["g6.2xlarge"]


def test_nodes_are_imdsv2_only_with_encrypted_volumes(run, manifests):
    for m in manifests:
        if m["kind"] == "EC2NodeClass":
            spec = m["spec"]
            assert spec["metadataOptions"]["httpTokens"] == "required"
            assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
            assert all(b["ebs"]["encrypted"] is True for b in spec["blockDeviceMappings"])
            # What the CRD enforces with CEL rules (not checked by the schema validator):
            assert ("role" in spec) != ("instanceProfile" in spec)
            family, _, version = spec["amiSelectorTerms"][0]["alias"].partition("@")
            assert family == "al2023" and version.startswith("v") and version != "latest"
            assert spec["subnetSelectorTerms"] and spec["securityGroupSelectorTerms"]
    template = run.one("aws:ec2/launchTemplate:LaunchTemplate").plain_inputs()
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"
    sc = next(m for m in manifests if m["kind"] == "StorageClass")
    assert sc["parameters"]["encrypted"] == "true" and sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"


def test_node_pool_disks_hold_image_and_weights(plans, manifests):
    classes = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "EC2NodeClass"}
    for p in plans:
        size = int(classes[p.plan.vendor]["spec"]["blockDeviceMappings"][0]["ebs"]["volumeSize"].removesuffix("Gi"))
        assert size >= p.plan.node_disk_gib > p.plan.checkpoint_gib


def test_the_token_never_leaves_pulumi_secrets(stack, run, tmp_path):
    secret = next(r for r in run.resources if r.type == "kubernetes:core/v1:Secret")
    assert secret.plain_inputs()["stringData"] == {"HF_TOKEN": SECRET}
    cost = plan_stack(recorded(stack)[0]).cost
    files = render.write(run, tmp_path, render.plan_document(run, recorded(stack)[1], cost))
    for path in [*files, tmp_path / "plan.json"]:
        assert PLACEHOLDER_TOKEN not in Path(path).read_text()
    # Containers read it from the Secret, never as a literal value: every server, GPU or Neuron, has one such entry.
    def env_entries(node):
        if isinstance(node, dict):
            if node.get("name") == "HF_TOKEN" and ("value" in node or "valueFrom" in node):
                yield node
            for v in node.values():
                yield from env_entries(v)
        elif isinstance(node, list):
            for v in node:
                yield from env_entries(v)

    entries = list(env_entries(render.manifests(run)))
    assert len(entries) >= len(recorded(stack)[1])
    for e in entries:
        assert "value" not in e and e["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "HF_TOKEN"}

def test_vllm_pin_matches_the_accounting_the_sizing_uses():
    version, facts = facts_for(None)
    assert version == versions.VLLM_VERSION
    assert f"v{version}" in versions.VLLM_IMAGE and ":latest" not in versions.VLLM_IMAGE


def test_karpenter_policies_fit_iam_limits():
    statements = {s["Sid"]: s for s in IAM_DATA["controller_policy"]["Statement"]}
    long = "c" * 100  # a long cluster name, the worst case
    for section, meta in IAM_DATA["_controller_policy_sections"].items():
        doc = {"Version": "2012-10-17", "Statement": [statements[s] for s in meta["sids"]]}
        text = substitute(doc, {"partition": "aws-us-gov", "region": "ap-southeast-3", "account_id": "123456789012",
                                "cluster_name": long, "queue_arn": "arn:aws:sqs:x:1:" + long,
                                "node_role_arn": "arn:aws:iam::1:role/KarpenterNodeRole-" + long})
        assert "{" + "partition}" not in text and len(text) <= 6144, section  # managed policy size limit
    all_actions = json.dumps(IAM_DATA["controller_policy"])
    for action in ("iam:ListInstanceProfiles", "iam:GetInstanceProfile", "iam:DeleteInstanceProfile"):
        assert action in all_actions  # the EC2NodeClass finalizer (karpenter-provider-aws #9185)


def test_karpenter_runs_off_karpenter_nodes_with_interruption_handling(run):
    values = run.one(RELEASE, "karpenter-controller").plain_inputs()["values"]
    assert values["settings"]["interruptionQueue"] == run.one("aws:sqs/queue:Queue").outputs["name"]
    assert values["replicas"] == 2
    queue = run.one("aws:sqs/queue:Queue").plain_inputs()
    assert queue["sqsManagedSseEnabled"] is True and queue["messageRetentionSeconds"] == 300
    assert len(run.by_type("aws:cloudwatch/eventRule:EventRule")) == 5


def test_environments_differ_only_where_intended():
    dev, prod = recorded("qwen-g6")[0], recorded("qwen-g6-prod")[0]
    assert dev.network.nat_gateways == "single" and prod.network.nat_gateways == "onePerAz"
    assert prod.system_nodes.desired_size > dev.system_nodes.desired_size
    assert len(recorded("qwen-g6")[2].by_type("aws:ec2/natGateway:NatGateway")) == 1
    assert len(recorded("qwen-g6-prod")[2].by_type("aws:ec2/natGateway:NatGateway")) == prod.network.availability_zones
    assert dev.models[0].model == prod.models[0].model
