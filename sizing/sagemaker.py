"""Amazon SageMaker's side of a plan: the ml.* instance types (the EC2 hardware each runs on, and SageMaker's own
price) and the LMI container that serves them (sizing/data/sagemaker.yaml, with sources).

The memory sizing is the same as on EKS: an ml.* type is planned as its EC2 twin, then priced as SageMaker bills it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any


from . import catalog
from .errors import SizingError


@dataclass(frozen=True)
class MlInstance:
    name: str  # ml.g5.12xlarge
    ec2: str  # g5.12xlarge: the same hardware, in instances.yaml
    hourly_usd: float  # SageMaker real-time inference, on demand


@functools.cache
def _data() -> dict[str, Any]:
    return catalog.load_yaml("sagemaker.yaml")


def ml_instances() -> dict[str, MlInstance]:
    return {name: MlInstance(name=name, **spec) for name, spec in _data()["instances"].items()}


def ml_instance(name: str) -> MlInstance:
    known = ml_instances()
    if name not in known:
        raise SizingError(f"instance type {name!r} is not an ml.* type the planner prices for SageMaker; known: "
                          f"{', '.join(known)}", key="instance_type")
    return known[name]


def prices_as_of() -> str:
    return str(_data()["prices_as_of"])


def lmi() -> dict[str, Any]:
    """The pinned LMI container: repository, tag, the vLLM inside, ECR accounts, how plan flags become options."""
    return _data()["lmi"]


def lmi_image(region: str) -> str:
    """The container image for `region` (AWS's Deep Learning Containers account there)."""
    spec = lmi()
    account = spec["accounts"].get(region)
    if account is None:
        raise SizingError(f"region {region!r} has no published LMI container account; supported: "
                          f"{', '.join(sorted(spec['accounts']))}")
    return f"{account}.dkr.ecr.{region}.amazonaws.com/{spec['repository']}:{spec['tag']}"
