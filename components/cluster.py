"""The EKS cluster: access entries instead of aws-auth, a small managed node group for controllers, the add-ons,
an encrypted gp3 default storage class, and the Kubernetes provider every other component uses."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from config.schema import Cluster as ClusterConfig
from config.schema import SystemNodes

from config.names import STORAGE_CLASS, SYSTEM_NODE_LABELS

from . import iam

ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def volume_tag_parameters(tags: dict[str, str]) -> dict[str, str]:
    """StorageClass parameters that make the EBS CSI driver tag every volume it creates: each `tagSpecification_<n>`
    value is one `key=value` tag (aws-ebs-csi-driver docs/tagging.md, "StorageClass Tagging")."""
    return {f"tagSpecification_{i}": f"{key}={value}" for i, (key, value) in enumerate(sorted(tags.items()), start=1)}


@dataclass
class ClusterArgs:
    cluster_name: str
    config: ClusterConfig
    system_nodes: SystemNodes
    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[list[str]]
    public_subnet_ids: pulumi.Input[list[str]]
    tags: dict[str, str] = field(default_factory=dict)


class Cluster(pulumi.ComponentResource):
    """EKS with API authentication; nodes only in private subnets."""

    kubeconfig: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:cluster:Cluster", name, None, opts)
        cfg, cluster_name = args.config, args.cluster_name
        child = pulumi.ResourceOptions(parent=self)
        self.cluster_name = cluster_name

        access = {
            f"admin-{i}": eks.AccessEntryArgs(
                principal_arn=arn,
                access_policies={"admin": eks.AccessPolicyAssociationArgs(
                    policy_arn=ADMIN_POLICY,
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                )},
            )
            for i, arn in enumerate(cfg.admin_role_arns)
        }
        # EKS writes control-plane logs to /aws/eks/<cluster>/cluster and creates that group itself, with no
        # retention, if it does not exist; such a group outlives `pulumi destroy`. Owning it (created before the
        # cluster) gives it a retention period and removes it with the stack.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs", name=f"/aws/eks/{cluster_name}/cluster",
            retention_in_days=cfg.log_retention_days, tags=args.tags, opts=child,
        )
        # pulumi_eks.Cluster is a remote component: we pass names we own and read only its documented outputs.
        self.eks = eks.Cluster(
            f"{name}-eks",
            name=cluster_name,
            version=cfg.kubernetes_version,
            vpc_id=args.vpc_id,
            private_subnet_ids=args.private_subnet_ids,
            public_subnet_ids=args.public_subnet_ids,
            node_associate_public_ip_address=False,
            endpoint_public_access=cfg.endpoint_public_access,
            endpoint_private_access=True,
            public_access_cidrs=cfg.public_access_cidrs,
            authentication_mode=eks.AuthenticationMode.API,
            access_entries=access,
            skip_default_node_group=True,
            enabled_cluster_log_types=cfg.log_types,
            # CoreDNS needs nodes to become healthy: it is installed below, after the system node group.
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            kube_proxy_addon_options=eks.KubeProxyAddonOptionsArgs(enabled=True),
            create_oidc_provider=False,  # controllers use EKS Pod Identity
            deletion_protection=cfg.deletion_protection,
            tags=args.tags,
            # deletionProtection alone only makes the final DeleteCluster fail, after `pulumi destroy` has deleted
            # every dependent (servers, NodePools and their nodes, add-ons, the system node group). Pulumi's `protect`
            # fails the destroy's preview instead, before anything is deleted (README, "Deletion protection").
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group], protect=cfg.deletion_protection),
        )
        self.kubeconfig = pulumi.Output.secret(self.eks.kubeconfig_json)
        self.cluster_security_group_id = self.eks.cluster_security_group_id
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, opts=child)

        # The system node group: Karpenter's two controller replicas (required anti-affinity), CoreDNS, the EBS CSI
        # controller and the operators run here, never on Karpenter's own nodes.
        nodes = args.system_nodes
        node_role = aws.iam.Role(f"{name}-system-node", assume_role_policy=iam.ec2_trust_policy(), tags=args.tags, opts=child)
        attachments = [
            aws.iam.RolePolicyAttachment(f"{name}-system-node-{p}", role=node_role.name, policy_arn=iam.managed_policy(p), opts=child)
            for p in ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryPullOnly")
        ]
        template = aws.ec2.LaunchTemplate(
            f"{name}-system",
            # IMDSv2 only; hop limit 2 because vpc-cni and the EBS CSI node plugin read instance metadata.
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=2,
            ),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda",
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=nodes.disk_gib, volume_type="gp3", encrypted="true", delete_on_termination="true",
                ),
            )],
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(
                resource_type="instance", tags={**args.tags, "Name": f"{cluster_name}-system"},
            )],
            tags=args.tags,
            opts=child,
        )
        # The EBS CSI controller's permissions outlive the system nodes it runs on (the node group depends on them):
        # at destroy it is still deleting the volumes of released PVCs after its add-on is gone (preserved below).
        ebs_role = aws.iam.Role(f"{name}-ebs-csi", assume_role_policy=iam.POD_IDENTITY_TRUST, tags=args.tags, opts=child)
        ebs_policy = aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi", role=ebs_role.name, policy_arn=iam.managed_policy("service-role/AmazonEBSCSIDriverPolicy"),
            opts=child,
        )
        self.system_nodes = aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=cluster_name,
            node_role_arn=node_role.arn,
            subnet_ids=args.private_subnet_ids,
            instance_types=nodes.instance_types,
            ami_type="AL2023_x86_64_STANDARD",
            capacity_type="ON_DEMAND",
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=nodes.min_size, desired_size=nodes.desired_size, max_size=nodes.max_size,
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(id=template.id, version=template.latest_version.apply(str)),
            labels=dict(SYSTEM_NODE_LABELS),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.eks, *attachments, ebs_policy],
                                        protect=cfg.deletion_protection),
        )

        after_nodes = pulumi.ResourceOptions(parent=self, depends_on=[self.system_nodes])
        # Preserved like CoreDNS: controllers still cleaning up at destroy (the EBS CSI controller) get their AWS
        # credentials from this agent's pods.
        pod_identity = aws.eks.Addon(
            f"{name}-pod-identity-agent", cluster_name=cluster_name, addon_name="eks-pod-identity-agent", preserve=True,
            resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="OVERWRITE", tags=args.tags,
            opts=after_nodes,
        )
        # Controllers that clean up at destroy (Karpenter draining nodes and terminating instances, the EBS CSI
        # controller deleting volumes) resolve AWS endpoints through CoreDNS: they depend on it, so it goes after
        # them; `preserve` keeps its pods serving until the cluster itself is deleted.
        self.coredns = aws.eks.Addon(
            f"{name}-coredns", cluster_name=cluster_name, addon_name="coredns", preserve=True,
            resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="OVERWRITE", tags=args.tags,
            opts=after_nodes,
        )
        # `helm uninstall` returns before PVC -> PV -> DeleteVolume is done: `preserve` keeps the driver running until
        # the cluster is deleted, as CoreDNS is kept, instead of removing it as soon as the releases are gone.
        # DeleteAddon with preserve leaves the add-on's pod identity association in place (EKS API reference).
        self.ebs_csi = aws.eks.Addon(
            f"{name}-ebs-csi", cluster_name=cluster_name, addon_name="aws-ebs-csi-driver", preserve=True,
            pod_identity_associations=[aws.eks.AddonPodIdentityAssociationArgs(
                role_arn=ebs_role.arn, service_account="ebs-csi-controller-sa",
            )],
            resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="OVERWRITE", tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.system_nodes, pod_identity, ebs_policy, self.coredns]),
        )
        self.pod_identity_agent = pod_identity

        # Encrypted gp3 as the default class (Prometheus's and Open WebUI's volumes), bound where the pod lands. Its
        # volumes carry the stack's tags, so any left after a destroy can be found (README, "Teardown").
        self.storage_class = k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=STORAGE_CLASS, annotations={"storageclass.kubernetes.io/is-default-class": "true"},
            ),
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true", "fsType": "ext4", **volume_tag_parameters(args.tags)},
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy="Delete",
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[self.ebs_csi]),
        )

        self.register_outputs({"cluster_name": cluster_name, "kubeconfig": self.kubeconfig})

