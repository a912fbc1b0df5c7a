"""target: sagemaker: stack config -> plan (the same sizing, on ml.* instance types) -> the weights bucket and copy ->
one SageMaker endpoint per model (LMI container, execution role, logs, autoscaling). No VPC, EKS or Karpenter."""

import pulumi

from components.sagemaker_endpoint import SageMakerEndpoint, SageMakerEndpointArgs
from components.sagemaker_weights import SageMakerWeights, SageMakerWeightsArgs
from config import ConfigError, load_from_pulumi
from plan.sagemaker import endpoint_name, plan_endpoints

stack = pulumi.get_stack()
region = pulumi.Config("aws").get("region") or "us-east-1"
try:
    config = load_from_pulumi()
    endpoints = plan_endpoints(config, region)  # every model placed, or one line naming the key
except ConfigError as exc:
    raise pulumi.RunError(str(exc)) from None

tags = {"llm-eks/stack": stack, "llm-eks/environment": config.environment, **config.tags}
weights = SageMakerWeights("weights", SageMakerWeightsArgs(
    stack=stack, hf_token=pulumi.Config().require_secret("hfToken"),
    log_retention_days=config.sagemaker.log_retention_days, tags=tags,
))
served = {e.name: SageMakerEndpoint(e.name, SageMakerEndpointArgs(
    plan=e, endpoint_name=endpoint_name(stack, e.name), weights=weights,
    log_retention_days=config.sagemaker.log_retention_days, subnet_ids=config.sagemaker.subnet_ids,
    security_group_ids=config.sagemaker.security_group_ids, tags=tags,
)) for e in endpoints}

pulumi.export("endpoints", {name: s.endpoint.name for name, s in served.items()})
pulumi.export("weights_bucket", weights.bucket.id)
pulumi.export("instances", {e.name: e.instance_type for e in endpoints})
pulumi.export("hourly_usd", {e.name: e.fleet_hourly_usd for e in endpoints})
