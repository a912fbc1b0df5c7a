"""`target: sagemaker`: each model planned as on EKS, on the EC2 twin of its ml.* instance type and with the vLLM line
inside the LMI container, then turned into what a SageMaker endpoint needs: the container's options, the instance
count bounds and SageMaker's price. Components read these fields and never call into sizing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sizing import sagemaker as ml
from sizing.errors import SizingError

from config.loader import ConfigError
from config.schema import StackConfig

from .cost import Cost, CostLine
from .models import ModelPlan, _key, _plan_flags, plan_model
from .weights import weights_plan

VARIANT = "AllTraffic"  # the one production variant; SageMaker's own default name
MODEL_DIR = "/opt/ml/model"  # where SageMaker puts the model's S3 data in the container
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class EndpointPlan:
    """One model as a SageMaker real-time endpoint."""

    model: ModelPlan  # the sizing, made on the EC2 twin with the LMI container's vLLM line
    instance_type: str  # ml.g5.12xlarge
    hourly_usd: float  # one instance, SageMaker's price
    copies_per_instance: int  # LMI starts one model copy per TP group of GPUs (load_on_devices: all)
    min_instances: int
    max_instances: int
    image: str  # the LMI container for the stack's region
    environment: dict[str, str]  # the container's options (no secret: the weights come from S3)
    weights_prefix: str  # models/<hf id>/<revision> in the stack's bucket (plan/weights.py, as on EKS)

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def concurrency_per_instance(self) -> int:
        """What one instance's model copies hold together: the autoscaler's target of concurrent requests."""
        return self.model.plan.concurrency_per_replica * self.copies_per_instance

    @property
    def fleet_hourly_usd(self) -> float:
        return self.hourly_usd * self.min_instances

    def to_dict(self) -> dict:
        return {"target": "sagemaker", "instance_type": self.instance_type, "hourly_usd": self.hourly_usd,
                "fleet_hourly_usd": round(self.fleet_hourly_usd, 4),
                "fleet_monthly_usd": round(self.fleet_hourly_usd * HOURS_PER_MONTH, 2),
                "copies_per_instance": self.copies_per_instance, "instances": [self.min_instances, self.max_instances],
                "concurrency_per_instance": self.concurrency_per_instance, "image": self.image,
                "environment": self.environment, "weights_prefix": self.weights_prefix,
                "prices_as_of": ml.prices_as_of()}


def lmi_environment(engine_args: tuple[str, ...], model_dir: str = MODEL_DIR) -> dict[str, str]:
    """The plan's vLLM flags as LMI options (sizing/data/sagemaker.yaml says how LMI maps each, with its source):
    the renamed ones under LMI's names, every other as OPTION_<FLAG>, which LMI passes to vLLM's engine args."""
    renamed = ml.lmi()["renamed_flags"]
    env = {"HF_MODEL_ID": model_dir}
    for flag, value in _plan_flags(engine_args).items():
        if value == f"--{flag}":  # a switch: LMI takes "true"
            value = "true"
        env[renamed.get(flag, "OPTION_" + flag.upper().replace("-", "_"))] = value
    return dict(sorted(env.items()))


def plan_endpoint(config: StackConfig, i: int, region: str) -> EndpointPlan:
    spec = config.models[i]
    try:
        instance = ml.ml_instance(spec.instance_type)
        image = ml.lmi_image(region)
    except SizingError as exc:
        raise ConfigError(f"{_key(i, 'instanceType')}: {exc}") from None
    twin = spec.model_copy(update={"instance_type": instance.ec2})
    planned = plan_model(twin, i, vllm_version=ml.lmi()["vllm_version"])
    copies = planned.plan.replicas_per_node
    return EndpointPlan(
        model=planned, instance_type=instance.name, hourly_usd=instance.hourly_usd, copies_per_instance=copies,
        min_instances=max(1, math.ceil(spec.replicas.min / copies)),
        max_instances=max(1, math.ceil(spec.replicas.max / copies)),
        image=image, environment=lmi_environment(planned.plan.engine_args),
        weights_prefix=weights_plan(spec.model, spec.revision, "vllm", cache_enabled=True).prefix)


def endpoint_name(stack: str, model: str) -> str:
    """<stack>-<model>: SageMaker's EndpointName pattern [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62} (the stack name may hold
    '_', a model name is a DNS label of at most 40 characters, so the stack part is cut to fit 63)."""
    head = "".join(c if c.isalnum() else "-" for c in stack).strip("-")[: 62 - len(model)].rstrip("-")
    return f"{head}-{model}"


def plan_endpoints(config: StackConfig, region: str) -> list[EndpointPlan]:
    return [plan_endpoint(config, i, region) for i in range(len(config.models))]


def endpoints_cost(endpoints: list[EndpointPlan]) -> Cost:
    """The endpoints' instances at their minimum count; the bucket, the copy Lambda and logs cost cents."""
    lines = [CostLine(f"{e.name} instances", f"{e.min_instances} x {e.instance_type} ({e.copies_per_instance} model "
                      f"copies each, SageMaker price)", e.fleet_hourly_usd) for e in endpoints]
    notes = [f"SageMaker real-time inference prices, us-east-1, as of {ml.prices_as_of()} (sizing/data/sagemaker.yaml)",
             "S3 storage of the weights (~$0.023/GB-month), the copy Lambda's minutes and CloudWatch logs not counted"]
    notes += [f"{e.name} at {e.max_instances} instances: ${e.hourly_usd * e.max_instances:.2f}/h"
              for e in endpoints if e.max_instances > e.min_instances]
    return Cost(lines=lines, notes=notes)
