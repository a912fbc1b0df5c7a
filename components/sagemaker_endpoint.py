"""One model as a SageMaker real-time endpoint: the LMI container (vLLM) with the plan's options, loading the weights
the stack's copy put in S3, an execution role that may read only that model's prefix, its log group, and Application
Auto Scaling on the variant's instance count when the replicas may vary."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from plan.sagemaker import VARIANT, EndpointPlan

from .sagemaker_weights import SageMakerWeights

SAGEMAKER_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
# SageMaker's bounds for both timeouts (CreateEndpointConfig ProductionVariant: 60-3600 s).
TIMEOUT_BOUNDS_S = (60, 3600)
SCALE_IN_COOLDOWN_S = 600  # a new instance loads the model for minutes: do not give one back at the first lull
SCALE_OUT_COOLDOWN_S = 60


@dataclass
class SageMakerEndpointArgs:
    plan: EndpointPlan
    endpoint_name: str  # <stack>-<model>, within SageMaker's 63 characters
    weights: SageMakerWeights
    log_retention_days: int
    subnet_ids: list[str] | None
    security_group_ids: list[str] | None
    tags: dict[str, str]


class SageMakerEndpoint(pulumi.ComponentResource):
    def __init__(self, name: str, args: SageMakerEndpointArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:sagemaker:SageMakerEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        plan, tags = args.plan, args.tags
        copied = args.weights.copy(name, plan.model.spec.model, plan.model.spec.revision, plan.weights_prefix)
        log_group = aws.cloudwatch.LogGroup(f"{name}-logs", name=f"/aws/sagemaker/Endpoints/{args.endpoint_name}",
                                            retention_in_days=args.log_retention_days, tags=tags, opts=child)
        role = aws.iam.Role(f"{name}-exec", assume_role_policy=SAGEMAKER_TRUST, tags=tags, opts=child)
        region = aws.get_region()
        policy = aws.iam.RolePolicy(f"{name}-exec", role=role.id, policy=pulumi.Output.all(
            args.weights.bucket.arn, log_group.arn).apply(
            lambda a: execution_policy(a[0], plan.weights_prefix, a[1], plan.image, region.region,
                                       vpc=args.subnet_ids is not None)), opts=child)
        vpc = (aws.sagemaker.ModelVpcConfigArgs(subnets=args.subnet_ids, security_group_ids=args.security_group_ids)
               if args.subnet_ids else None)
        self.model = aws.sagemaker.Model(
            f"{name}-model", execution_role_arn=role.arn, enable_network_isolation=True, vpc_config=vpc,
            primary_container=aws.sagemaker.ModelPrimaryContainerArgs(
                image=plan.image, environment=plan.environment,
                model_data_source=aws.sagemaker.ModelPrimaryContainerModelDataSourceArgs(s3_data_sources=[
                    aws.sagemaker.ModelPrimaryContainerModelDataSourceS3DataSourceArgs(
                        s3_uri=args.weights.bucket.id.apply(lambda b: f"s3://{b}/{plan.weights_prefix}/"),
                        s3_data_type="S3Prefix", compression_type="None")])),
            tags=tags, opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, copied]))
        timeout = min(max(plan.model.startup_seconds, TIMEOUT_BOUNDS_S[0]), TIMEOUT_BOUNDS_S[1])
        config = aws.sagemaker.EndpointConfiguration(
            f"{name}-config", production_variants=[aws.sagemaker.EndpointConfigurationProductionVariantArgs(
                variant_name=VARIANT, model_name=self.model.name, instance_type=plan.instance_type,
                initial_instance_count=plan.min_instances,
                container_startup_health_check_timeout_in_seconds=timeout,
                model_data_download_timeout_in_seconds=timeout)],
            tags=tags, opts=child)
        self.endpoint = aws.sagemaker.Endpoint(f"{name}-endpoint", name=args.endpoint_name,
                                               endpoint_config_name=config.name, tags=tags,
                                               opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group]))
        if plan.max_instances > plan.min_instances:
            target = aws.appautoscaling.Target(
                f"{name}-scaling", service_namespace="sagemaker",
                resource_id=self.endpoint.name.apply(lambda n: f"endpoint/{n}/variant/{VARIANT}"),
                scalable_dimension="sagemaker:variant:DesiredInstanceCount",
                min_capacity=plan.min_instances, max_capacity=plan.max_instances, opts=child)
            aws.appautoscaling.Policy(
                f"{name}-scaling", policy_type="TargetTrackingScaling", service_namespace=target.service_namespace,
                resource_id=target.resource_id, scalable_dimension=target.scalable_dimension,
                target_tracking_scaling_policy_configuration=aws.appautoscaling.
                PolicyTargetTrackingScalingPolicyConfigurationArgs(
                    # Concurrent requests per instance's model server, at 1 s resolution: the users the plan gave
                    # each instance (its copies' KV caches hold them), scaled out before requests queue.
                    predefined_metric_specification=aws.appautoscaling.
                    PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                        predefined_metric_type="SageMakerVariantConcurrentRequestsPerModelHighResolution"),
                    target_value=float(plan.concurrency_per_instance),
                    scale_in_cooldown=SCALE_IN_COOLDOWN_S, scale_out_cooldown=SCALE_OUT_COOLDOWN_S),
                opts=child)
        self.register_outputs({"endpoint": self.endpoint.name})


def execution_policy(bucket_arn: str, prefix: str, log_group_arn: str, image: str, region: str, vpc: bool) -> str:
    """Least privilege for the endpoint: read this model's prefix, pull the LMI image, write its own logs (and, in a
    VPC, the network interfaces SageMaker attaches)."""
    registry, repository = image.split("/", 1)[0], image.split("/", 1)[1].split(":", 1)[0]
    account = registry.split(".", 1)[0]
    partition_arn = bucket_arn.split(":", 2)[1]
    statements = [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{bucket_arn}/{prefix}/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn,
         "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*"]}}},
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},  # the API takes no resource
        {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                       "ecr:BatchCheckLayerAvailability"],
         "Resource": f"arn:{partition_arn}:ecr:{region}:{account}:repository/{repository}"},
        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": f"{log_group_arn}:*"},
        {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}}},
    ]
    if vpc:  # SageMaker developer guide, "Give SageMaker access to resources in your VPC"
        statements.append({"Effect": "Allow", "Resource": "*", "Action": [
            "ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
            "ec2:DeleteNetworkInterfacePermission", "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs",
            "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"]})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})
