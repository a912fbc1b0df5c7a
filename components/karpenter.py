"""Karpenter v1: node role and access entry, interruption queue, controller IAM via Pod Identity, the CRD and
controller Helm releases, and the EC2NodeClasses and NodePools derived from the sizing plans.

Destroy order is a dependency chain: system node group <- CoreDNS <- karpenter-crd release <- karpenter release <-
EC2NodeClasses <- NodePools <- model servers. `pulumi destroy` walks it backwards, so model pods go first, then the
NodePools (Karpenter drains and terminates their nodes while its controller still runs on the system nodes), then
the node classes (their finalizer cleans up instance profiles), and only then the controller and its CRDs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from config.names import CPU_POOL, KUBE_SYSTEM
from plan.stack import StackPlan

from . import helm, iam, node_pools, versions
from .scheduling import system_placement

IAM_DATA = json.loads((Path(__file__).parent / "data" / "karpenter-iam.json").read_text())
NAMESPACE = KUBE_SYSTEM
SERVICE_ACCOUNT = "karpenter"


def substitute(document: object, values: dict[str, str]) -> str:
    """The upstream policy text with {placeholders} replaced (str.replace: the JSON has literal braces)."""
    text = json.dumps(document, separators=(",", ":"))
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def karpenter_values(cluster_name: str, queue_name: pulumi.Input[str]) -> dict:
    """Helm values, checked against the chart's upstream values.yaml by the tests."""
    return {
        "settings": {"clusterName": cluster_name, "interruptionQueue": queue_name},
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT},
        "replicas": 2,  # required anti-affinity: one per system node
        **system_placement(),
        "controller": {"image": {"digest": versions.KARPENTER_CONTROLLER_DIGEST},
                       "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}},
    }


@dataclass
class KarpenterArgs:
    cluster_name: str
    region: str
    account_id: str
    stack: StackPlan
    provider: k8s.Provider
    cluster: pulumi.Resource  # the EKS cluster: what names it by a plain string must still wait for it
    system_nodes: pulumi.Resource
    pod_identity_agent: pulumi.Resource
    coredns: pulumi.Resource  # Karpenter resolves AWS endpoints while it drains and terminates nodes at destroy
    tags: dict[str, str] = field(default_factory=dict)


class Karpenter(pulumi.ComponentResource):
    """Karpenter and the node pools of this stack's models."""

    def __init__(self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:karpenter:Karpenter", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster, tags = args.cluster_name, args.tags
        partition = iam.partition()

        # Nodes: the upstream node role, allowed into the cluster by an access entry (API authentication).
        self.node_role = aws.iam.Role(
            f"{name}-node", name=f"KarpenterNodeRole-{cluster}", assume_role_policy=iam.ec2_trust_policy(), tags=tags, opts=child,
        )
        for i, arn in enumerate(IAM_DATA["node_role_managed_policies"]):
            aws.iam.RolePolicyAttachment(f"{name}-node-{i}", role=self.node_role.name,
                                         policy_arn=arn.replace("{partition}", partition), opts=child)
        # The cluster is named by a plain string, so the dependency is explicit: EKS takes ~10 minutes to create it.
        access = aws.eks.AccessEntry(f"{name}-node", cluster_name=cluster, principal_arn=self.node_role.arn,
                                     type="EC2_LINUX", tags=tags,
                                     opts=pulumi.ResourceOptions(parent=self, depends_on=[args.cluster]))

        # Interruption handling: spot warnings, rebalance, health and state-change events into an encrypted queue.
        queue = aws.sqs.Queue(f"{name}-interruption", name=cluster, tags=tags, opts=child, **IAM_DATA["queue"])
        aws.sqs.QueuePolicy(f"{name}-interruption", queue_url=queue.url,
                            policy=queue.arn.apply(lambda arn: substitute(IAM_DATA["queue_policy"], {"queue_arn": arn})),
                            opts=child)
        for rule in IAM_DATA["event_rules"]:
            event_rule = aws.cloudwatch.EventRule(
                f"{name}-{rule['name']}", event_pattern=json.dumps(rule["event_pattern"]), tags=tags, opts=child,
            )
            aws.cloudwatch.EventTarget(f"{name}-{rule['name']}", rule=event_rule.name, arn=queue.arn,
                                       target_id=rule["target_id"], opts=child)

        # Controller: upstream's managed policies (split as upstream does: one document exceeds IAM's size limit),
        # including the instance-profile reads the EC2NodeClass finalizer needs.
        statements = {s["Sid"]: s for s in IAM_DATA["controller_policy"]["Statement"]}
        controller_role = aws.iam.Role(f"{name}-controller", assume_role_policy=iam.POD_IDENTITY_TRUST, tags=tags, opts=child)
        attachments = []
        for section, meta in IAM_DATA["_controller_policy_sections"].items():
            document = {"Version": "2012-10-17", "Statement": [statements[sid] for sid in meta["sids"]]}
            policy_text = pulumi.Output.all(queue.arn, self.node_role.arn).apply(
                lambda arns, d=document: substitute(d, {
                    "partition": partition, "region": args.region, "account_id": args.account_id,
                    "cluster_name": cluster, "queue_arn": arns[0], "node_role_arn": arns[1],
                })
            )
            policy = aws.iam.Policy(f"{name}-{section}", name=meta["managed_policy_name"].replace("{cluster_name}", cluster),
                                    policy=policy_text, tags=tags, opts=child)
            attachments.append(aws.iam.RolePolicyAttachment(f"{name}-{section}", role=controller_role.name,
                                                            policy_arn=policy.arn, opts=child))
        association = aws.eks.PodIdentityAssociation(
            f"{name}-controller", cluster_name=cluster, namespace=NAMESPACE, service_account=SERVICE_ACCOUNT,
            role_arn=controller_role.arn, tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*attachments, args.cluster, args.pod_identity_agent]),
        )

        k8s_opts = dict(parent=self, provider=args.provider)
        self.crd_release = helm.release(
            f"{name}-crd", "karpenter-crd", versions.KARPENTER_CRD, NAMESPACE,
            pulumi.ResourceOptions(**k8s_opts, depends_on=[args.system_nodes, args.coredns]),
            timeout_seconds=helm.SYSTEM_NODES_SECONDS,
        )
        self.release = helm.release(
            f"{name}-controller", "karpenter", versions.KARPENTER, NAMESPACE,
            pulumi.ResourceOptions(**k8s_opts, depends_on=[self.crd_release, association, access, args.system_nodes,
                                                           args.coredns]),
            timeout_seconds=helm.SYSTEM_NODES_SECONDS,
            values=karpenter_values(cluster, queue.name),
            skip_crds=True,  # the karpenter-crd release owns (and upgrades) the CRDs
        )

        # Node classes: the CPU one and one per accelerator vendor, each disk sized by the plan.
        self.node_classes: dict[str, k8s.apiextensions.CustomResource] = {
            kind: k8s.apiextensions.CustomResource(
                f"{name}-class-{kind}", api_version="karpenter.k8s.aws/v1", kind="EC2NodeClass",
                metadata={"name": kind},
                spec=self.node_role.name.apply(lambda role, disk=disk, kind=kind: node_pools.node_class_spec(
                    cluster_name=cluster, node_role=role, disk_gib=disk, tags=tags,
                    fast_image_pull=kind != CPU_POOL)),
                opts=pulumi.ResourceOptions(**k8s_opts, depends_on=[self.release, args.coredns]),
            )
            for kind, disk in args.stack.node_class_disks.items()
        }

        self.node_pools: dict[str, k8s.apiextensions.CustomResource] = {}
        self.node_pools[CPU_POOL] = k8s.apiextensions.CustomResource(
            f"{name}-pool-{CPU_POOL}", api_version="karpenter.sh/v1", kind="NodePool", metadata={"name": CPU_POOL},
            spec=node_pools.cpu_pool_spec(),
            opts=pulumi.ResourceOptions(**k8s_opts, depends_on=[self.node_classes[CPU_POOL]]),
        )
        for m in args.stack.models:
            self.node_pools[m.name] = k8s.apiextensions.CustomResource(
                f"{name}-pool-{m.pool}", api_version="karpenter.sh/v1", kind="NodePool", metadata={"name": m.pool},
                spec=node_pools.accelerator_pool_spec(m),
                opts=pulumi.ResourceOptions(**k8s_opts, depends_on=[self.node_classes[m.plan.vendor]]),
            )

        self.register_outputs({"node_role": self.node_role.name, "queue": queue.name})
