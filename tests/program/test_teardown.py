"""What `pulumi destroy` and Karpenter do after the first `pulumi up`: deletion protection, volumes, node lifetimes.

The rules these tests hold the program to come from the upstream code and docs the README's "Teardown" and
"Disruption" sections cite: Pulumi's engine (pkg/resource/deploy/step.go, DeleteStep.Apply refuses a protected
resource before its dry-run branch, so `pulumi destroy`'s preview fails before anything is deleted), Karpenter
v1.14.1 (website/content/en/docs/concepts/disruption.md) and the EBS CSI driver (docs/tagging.md).
"""

from __future__ import annotations

import json

from preview import render

from .conftest import recorded

CLUSTER = "eks:index:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def test_protection_asked_for_is_pulumi_protect_on_the_cluster_and_system_nodes(config, run):
    """deletionProtection alone fails only the final DeleteCluster, after every dependent is gone; `protect` on
    the cluster and the system node group makes the destroy's preview fail first. Stacks that do not ask for it
    keep a destroy that works."""
    asked = config.cluster.deletion_protection
    cluster, nodes = run.one(CLUSTER), run.one(NODE_GROUP, "cluster-system")
    assert cluster.inputs["deletionProtection"] is asked
    assert cluster.protect is asked and nodes.protect is asked
    protected = {r.name for r in run.resources if r.protect}
    assert protected == ({"cluster-eks", "cluster-system"} if asked else set())


def test_the_prod_example_asks_for_protection():
    config, _, run = recorded("qwen-g6-prod")
    assert config.cluster.deletion_protection
    assert run.one(CLUSTER).protect


def test_plan_json_records_protect_and_retain_on_delete_for_every_resource(config, plans, run):
    from plan.stack import plan_stack

    doc = json.loads(render.plan_json(render.plan_document(run, plans, plan_stack(config).cost)))
    by_name = {r["name"]: r for r in doc["resources"]}
    assert all({"protect", "retainOnDelete"} <= set(r) for r in doc["resources"])
    assert by_name["cluster-eks"]["protect"] is config.cluster.deletion_protection
    assert not any(r["retainOnDelete"] for r in doc["resources"])  # nothing is left behind on purpose
