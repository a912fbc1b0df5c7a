"""The schema of a stack file (stacks/Pulumi.<stack>.yaml): every llm-eks:* key, its type and its default.

Keys are camelCase as Pulumi writes them (`pulumi config set --path 'models[0].maxModelLen' 8192`). Unknown keys
are errors: a typo must fail, not silently fall back to a default.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator
from pydantic.alias_generators import to_camel, to_snake

from sizing.settings import BY_KEY, SETTINGS, Setting

from .names import reserved_reason

PROJECT = "llm-eks"
KUBERNETES_VERSIONS = ("1.33", "1.34", "1.35", "1.36")  # EKS standard support; 1.34 ends 2026-12-02
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")


# The retention values CloudWatch Logs accepts (PutRetentionPolicy API reference).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False, frozen=True)


# Availability Zone ids where EKS cannot place a cluster's subnets (EKS user guide, "Network requirements", subnet
# requirements; read 2026-12): zone names map to different ids in each account, so ids are what is excluded.
EKS_UNSUPPORTED_ZONE_IDS = ("use1-az3", "usw1-az2", "cac1-az3")
ZONE_ID = re.compile(r"^[a-z]{2,4}[0-9]-az[0-9]+$")  # use1-az1, apne1-az4, euc1-az2


class Network(_Model):
    """VPC layout. NAT: one gateway per AZ survives an AZ outage; a single one saves ~$32/month each.
    Zones: the first `availabilityZones` of the region's standard zones that EKS supports, or exactly `zoneIds`."""

    cidr: str = "10.0.0.0/16"
    availability_zones: Annotated[int, Field(ge=2, le=6)] = 3
    zone_ids: Annotated[list[Annotated[str, Field(pattern=ZONE_ID.pattern)]], Field(min_length=2, max_length=6)] | None = None
    nat_gateways: Literal["onePerAz", "single"] = "onePerAz"

    @field_validator("zone_ids")
    @classmethod
    def _zone_ids(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if len(set(v)) != len(v):
            raise ValueError("zone ids must be distinct")
        bad = [z for z in v if z in EKS_UNSUPPORTED_ZONE_IDS]
        if bad:
            raise ValueError(f"EKS does not support subnets in {', '.join(bad)}; choose other zone ids")
        return v

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        net = ipaddress.ip_network(v, strict=True)
        if net.version != 4 or not 16 <= net.prefixlen <= 20:
            raise ValueError("must be an IPv4 network from /16 to /20")
        return str(net)


# Address ranges reserved for documentation: no host anywhere has such an address, so a cluster whose API only
# accepts them is unreachable, by Pulumi too (RFC 5737 section 3: TEST-NET-1/2/3; RFC 3849 section 2).
DOCUMENTATION_RANGES = {
    ipaddress.ip_network("192.0.2.0/24"): "RFC 5737",
    ipaddress.ip_network("198.51.100.0/24"): "RFC 5737",
    ipaddress.ip_network("203.0.113.0/24"): "RFC 5737",
    ipaddress.ip_network("2001:db8::/32"): "RFC 3849",
}


def documentation_range(cidr: str) -> str | None:
    """The RFC that reserves `cidr` for documentation when it lies inside such a range, else None."""
    net = ipaddress.ip_network(cidr, strict=False)
    return next((rfc for doc, rfc in DOCUMENTATION_RANGES.items()
                 if doc.version == net.version and net.subnet_of(doc)), None)


class Cluster(_Model):
    kubernetes_version: Literal[KUBERNETES_VERSIONS] = "1.35"  # type: ignore[valid-type]
    endpoint_public_access: bool = True
    public_access_cidrs: list[str] = ["0.0.0.0/0"]
    log_types: list[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]] = [
        "api", "audit", "authenticator",
    ]
    admin_role_arns: list[Annotated[str, Field(pattern=r"^arn:aws[-a-z]*:iam::\d{12}:role/.+$")]] = []
    deletion_protection: bool = False
    # Control-plane log group retention.
    log_retention_days: Literal[LOG_RETENTION_DAYS] = 30  # type: ignore[valid-type]

    @field_validator("kubernetes_version", mode="before")
    @classmethod
    def _version(cls, v: object) -> object:
        # `kubernetesVersion: 1.35` unquoted is a YAML float. Take it when it reads back as a supported version;
        # a float such as 1.3 may have been written 1.30 (YAML drops the zero), so it must be quoted instead.
        if isinstance(v, float):
            text = repr(v)
            if text in KUBERNETES_VERSIONS:
                return text
            raise ValueError(
                f"a YAML number, and YAML reads 1.30 and 1.3 alike; quote the version, e.g. "
                f"kubernetesVersion: \"{KUBERNETES_VERSIONS[-2]}\" (supported: {', '.join(KUBERNETES_VERSIONS)})"
            )
        return v

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(c, strict=True)) for c in v]


class SystemNodes(_Model):
    """The managed node group for controllers. Karpenter's two replicas need two nodes (anti-affinity)."""

    instance_types: Annotated[list[str], Field(min_length=1)] = ["m7i.large"]
    min_size: Annotated[int, Field(ge=2)] = 2
    desired_size: Annotated[int, Field(ge=2)] = 2
    max_size: Annotated[int, Field(ge=2)] = 3
    disk_gib: Annotated[int, Field(ge=20, le=1000)] = 50

    @model_validator(mode="after")
    def _sizes(self) -> "SystemNodes":
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError("needs minSize <= desiredSize <= maxSize")
        return self


def _annotation(s: Setting) -> Any:
    """A setting's type with its choices and bounds, as pydantic checks them."""
    base: Any = Literal[s.choices] if s.choices else s.type
    bounds = {k: getattr(s, k) for k in ("gt", "ge", "le", "pattern") if getattr(s, k) is not None}
    return Annotated[base, Field(**bounds)] if bounds else base


def _field(s: Setting) -> tuple[Any, Any]:
    """(annotation, Field) of a sizing setting's stack key, described by its one description (sizing/settings.py)."""
    if s.required:
        return _annotation(s), Field(description=s.help)
    if s.default is None:
        return Optional[_annotation(s)], Field(default=None, description=s.help)
    return _annotation(s), Field(default=s.default, description=s.help)


def stack_value(model: BaseModel, s: Setting) -> Any:
    """The value a model's stack keys give setting `s` (`replicas.min` walks into `replicas`)."""
    value: Any = model
    for part in (s.stack or "").split("."):
        value = getattr(value, to_snake(part))
    return value


class Replicas(_Model):
    min: _annotation(BY_KEY["min_replicas"]) = Field(BY_KEY["min_replicas"].default,  # type: ignore[valid-type]
                                                     description=BY_KEY["min_replicas"].help)
    max: _annotation(BY_KEY["max_replicas"]) = Field(BY_KEY["max_replicas"].default,  # type: ignore[valid-type]
                                                     description=BY_KEY["max_replicas"].help)

    @model_validator(mode="after")
    def _order(self) -> "Replicas":
        if self.min > self.max:
            raise ValueError("needs min <= max")
        return self


def _group(prefix: str, name: str) -> type[_Model]:
    """A nested key group of a model (`slo`, `load`): the sizing settings whose stack key is `prefix.<key>`, each
    typed, bounded and described by its one description (sizing/settings.py)."""
    members = [s for s in SETTINGS if (s.stack or "").startswith(prefix + ".")]
    return create_model(name, __base__=_Model, __module__=__name__,  # type: ignore[call-overload]
                        **{to_snake(s.stack.split(".", 1)[1]): _field(s) for s in members})


Slo = _group("slo", "Slo")  # the latency target: ttftP90Ms, itlMs
Load = _group("load", "Load")  # the load it holds for: inputTokens, outputTokens, requestsPerSecond


class Autoscaling(_Model):
    """Overrides of the autoscaler's per-replica thresholds (defaults come from the plan's KV-cache prediction)."""

    waiting_per_replica: Annotated[float, Field(gt=0)] | None = None  # requests queued per replica
    kv_cache_usage: Annotated[float, Field(gt=0, le=1)] | None = None  # fraction of the KV cache in use
    running_per_replica: Annotated[float, Field(gt=0)] | None = None  # requests in the batch per replica


# vllm-router 0.1.17's load-balancing policies (its `--policy` choices that need no extra setup: kv_aware needs KV
# event streams, sticky_least_loaded session headers). components/router.py passes the model's choice as --policy.
ROUTING_POLICIES = ("cache_aware", "round_robin", "power_of_two", "consistent_hash", "random")


class _Named(_Model):
    name: str


# The keys of the sizing settings, each typed, bounded and described by sizing/settings.py (one description).
_SizingKeys = create_model("_SizingKeys", __base__=_Named, __module__=__name__,
                           **{s.field: _field(s) for s in SETTINGS if s.field})  # type: ignore[call-overload]


class Model(_SizingKeys):  # type: ignore[valid-type, misc]
    """One served model: what to serve, for which workload, on what hardware (the sizing keys, from
    sizing/settings.py), and how to run it."""

    replicas: Replicas = Replicas()
    slo: Slo = Slo()  # type: ignore[valid-type]
    load: Load = Load()  # type: ignore[valid-type]
    autoscaling: Autoscaling = Autoscaling()  # used when replicas.max > replicas.min
    capacity_type: Literal["on-demand", "spot"] = "on-demand"
    extra_engine_args: list[str] = []
    # How the router spreads this model's requests over its replicas; unset: cache_aware when replicas.max > 1 (a
    # multi-turn chat goes back to the replica holding its prefix), round_robin for one replica (plan/routing.py).
    routing: Literal[ROUTING_POLICIES] | None = None  # type: ignore[valid-type]
    # The Hub revision served (a branch, tag or commit); the weights cache keeps one copy per revision under
    # models/<model>/<revision>, filled once: pin a commit so that a moved branch does not serve a stale copy.
    revision: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")] = "main"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not DNS_LABEL.match(v):
            raise ValueError("must be a DNS label: lower-case letters, digits and '-', at most 40 characters")
        why = reserved_reason(v)
        if why:
            raise ValueError(f"is reserved: {why}; choose another name (a model's name becomes its namespace and "
                             "NodePool; the reserved names are in config/names.py)")
        return v


class ChatUi(_Model):
    """Open WebUI for vLLM-served models; the Gradio app for Ray Serve ones; or none."""

    kind: Literal["open-webui", "gradio", "none"] = "open-webui"


class WeightsCache(_Model):
    """The stack's S3 weights cache: a fill Job copies each model revision from the Hub once, vLLM streams it from
    S3 (--load-format runai_streamer). Off: every server downloads from the Hub at start, as before."""

    enabled: bool = True


class Observability(_Model):
    cloudwatch: bool = False  # the amazon-cloudwatch-observability add-on (Container Insights, Neuron Monitor)


class SageMaker(_Model):
    """`target: sagemaker` only: where the endpoint's instances sit and how long its logs stay. Without subnetIds the
    endpoint runs in SageMaker's own network (internet access for the container, no VPC to build)."""

    subnet_ids: Annotated[list[str], Field(min_length=1, max_length=16)] | None = None
    security_group_ids: Annotated[list[str], Field(min_length=1, max_length=5)] | None = None
    log_retention_days: Literal[LOG_RETENTION_DAYS] = 30  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _vpc(self) -> "SageMaker":
        if (self.subnet_ids is None) != (self.security_group_ids is None):
            raise ValueError("VPC placement needs both subnetIds and securityGroupIds (SageMaker's VpcConfig)")
        return self


# The keys that describe a cluster, which `target: sagemaker` does not build.
EKS_ONLY_KEYS = ("cluster", "network", "system_nodes", "chat_ui", "observability", "weights_cache")


class StackConfig(_Model):
    """Everything under the llm-eks: namespace of a stack file, validated once."""

    # eks: VPC, EKS, Karpenter and the model servers (the default); sagemaker: one SageMaker endpoint per model, with
    # the same sizing, on ml.* instance types (plan/sagemaker.py, components/sagemaker_endpoint.py).
    target: Literal["eks", "sagemaker"] = "eks"
    sagemaker: SageMaker = SageMaker()
    environment: Literal["dev", "prod"] = "dev"
    cluster: Cluster = Cluster()
    network: Network = Network()
    system_nodes: SystemNodes = SystemNodes()
    models: Annotated[list[Model], Field(min_length=1)]
    # hfToken is checked by the loader (present, and a secret) but never held here: the program reads it with
    # pulumi.Config().require_secret, so the plain token never sits in a model object.
    chat_ui: ChatUi = ChatUi()
    observability: Observability = Observability()
    weights_cache: WeightsCache = WeightsCache()
    tags: dict[str, str] = {}

    @model_validator(mode="after")
    def _target(self) -> "StackConfig":
        if self.target == "sagemaker":
            unused = [to_camel(k) for k in EKS_ONLY_KEYS if k in self.model_fields_set]
            if unused:
                raise ValueError(f"{', '.join(unused)}: not used by target sagemaker (no cluster is built); remove it")
            for i, m in enumerate(self.models):
                if not (m.instance_type or "").startswith("ml."):
                    raise ValueError(f"models[{i}].instanceType: target sagemaker needs an ml.* instance type "
                                     f"(e.g. ml.g5.12xlarge), got {m.instance_type!r}")
        else:
            if "sagemaker" in self.model_fields_set:
                raise ValueError("sagemaker: only used by target sagemaker; set target: sagemaker or remove it")
            for i, m in enumerate(self.models):
                if (m.instance_type or "").startswith("ml."):
                    raise ValueError(f"models[{i}].instanceType: {m.instance_type} is a SageMaker type; "
                                     "set target: sagemaker, or use the EC2 type (without ml.)")
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> "StackConfig":
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        return self
