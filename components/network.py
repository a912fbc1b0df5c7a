"""The VPC: public and private subnets over several AZs, NAT, and an S3 gateway endpoint for model downloads."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from config.schema import EKS_UNSUPPORTED_ZONE_IDS
from config.schema import Network as NetworkConfig


def subnet_plan(cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """(private, public) CIDRs: private subnets of 1/8 of the VPC each (nodes and pods take most addresses),
    public subnets of 1/64 (load balancers and NAT gateways) carved from the last eighth."""
    vpc = ipaddress.ip_network(cidr)
    eighths = list(vpc.subnets(prefixlen_diff=3))
    private = [str(n) for n in eighths[:zones]]
    public = [str(n) for n in list(eighths[-1].subnets(prefixlen_diff=3))[:zones]]
    return private, public


def choose_zones(region: str, cfg: NetworkConfig, zones: aws.GetAvailabilityZonesResult) -> list[str]:
    """Zone names for the subnets: the ones `zoneIds` names, in that order, or the first `availabilityZones` of
    what the region offers (the query already left out opt-in zones and those EKS does not support)."""
    by_id = dict(zip(zones.zone_ids, zones.names))
    if cfg.zone_ids:
        missing = [z for z in cfg.zone_ids if z not in by_id]
        if missing:
            raise pulumi.RunError(
                f"llm-eks:network.zoneIds: {', '.join(missing)} not offered in {region} for EKS "
                f"(available: {', '.join(sorted(by_id))})"
            )
        return [by_id[z] for z in cfg.zone_ids]
    if len(zones.names) < cfg.availability_zones:
        raise pulumi.RunError(
            f"llm-eks:network.availabilityZones: {region} offers {len(zones.names)} zones EKS supports "
            f"({', '.join(zones.names)}), {cfg.availability_zones} asked"
        )
    return list(zones.names[: cfg.availability_zones])


@dataclass
class NetworkArgs:
    cluster_name: str
    config: NetworkConfig
    region: str
    tags: dict[str, str] = field(default_factory=dict)


class Network(pulumi.ComponentResource):
    """VPC with one public and one private subnet per AZ; nodes live in the private ones."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    public_subnet_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cfg, cluster = args.config, args.cluster_name
        tags = {**args.tags, f"kubernetes.io/cluster/{cluster}": "shared"}

        azs = choose_zones(args.region, cfg, aws.get_availability_zones(
            state="available",
            # Standard zones only: Local and Wavelength Zones are opt-in and lack EKS and most GPU instances.
            filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"]),
                     aws.GetAvailabilityZonesFilterArgs(name="zone-type", values=["availability-zone"])],
            exclude_zone_ids=list(EKS_UNSUPPORTED_ZONE_IDS),
            opts=pulumi.InvokeOptions(parent=self),
        ))
        private_cidrs, public_cidrs = subnet_plan(cfg.cidr, len(azs))

        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=cfg.cidr, enable_dns_hostnames=True, enable_dns_support=True,
                          tags={**tags, "Name": cluster}, opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={**tags, "Name": cluster}, opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**tags, "Name": f"{cluster}-public"}, opts=child,
        )

        public, private, nats, private_rts = [], [], [], []
        for i, az in enumerate(azs):
            pub = aws.ec2.Subnet(
                f"{name}-public-{az}", vpc_id=vpc.id, cidr_block=public_cidrs[i], availability_zone=az,
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{cluster}-public-{az}", "kubernetes.io/role/elb": "1"}, opts=child,
            )
            aws.ec2.RouteTableAssociation(f"{name}-public-{az}", subnet_id=pub.id, route_table_id=public_rt.id, opts=child)
            public.append(pub)
            if cfg.nat_gateways == "onePerAz" or i == 0:
                eip = aws.ec2.Eip(f"{name}-nat-{az}", domain="vpc", tags={**tags, "Name": f"{cluster}-nat-{az}"}, opts=child)
                nats.append(aws.ec2.NatGateway(
                    f"{name}-nat-{az}", allocation_id=eip.id, subnet_id=pub.id,
                    tags={**tags, "Name": f"{cluster}-nat-{az}"},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                ))
            nat = nats[-1] if cfg.nat_gateways == "onePerAz" else nats[0]
            priv = aws.ec2.Subnet(
                f"{name}-private-{az}", vpc_id=vpc.id, cidr_block=private_cidrs[i], availability_zone=az,
                tags={**tags, "Name": f"{cluster}-private-{az}", "kubernetes.io/role/internal-elb": "1",
                      "karpenter.sh/discovery": cluster},
                opts=child,
            )
            rt = aws.ec2.RouteTable(
                f"{name}-private-{az}", vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
                tags={**tags, "Name": f"{cluster}-private-{az}"}, opts=child,
            )
            aws.ec2.RouteTableAssociation(f"{name}-private-{az}", subnet_id=priv.id, route_table_id=rt.id, opts=child)
            private.append(priv)
            private_rts.append(rt)

        # Model weights come from Hugging Face over NAT, but S3 (ECR image layers, models staged in S3) should not
        # pay NAT data processing: a free gateway endpoint on the private route tables.
        aws.ec2.VpcEndpoint(
            f"{name}-s3", vpc_id=vpc.id, service_name=f"com.amazonaws.{args.region}.s3", vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts], tags={**tags, "Name": f"{cluster}-s3"}, opts=child,
        )

        self.vpc_id = vpc.id
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private])
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public])
        self.register_outputs({
            "vpc_id": self.vpc_id,
            "private_subnet_ids": self.private_subnet_ids,
            "public_subnet_ids": self.public_subnet_ids,
        })
