"""Run the real __main__.py under Pulumi's mock runtime and record every resource it registers.

One harness serves the offline preview (`make preview`) and the tests. It reads a stack file the way the Pulumi CLI
does (stacks/Pulumi.<stack>.yaml, objects as JSON text, `secure:` values as secrets), answers the few provider calls
the program makes (availability zones, caller identity, partition), and gives remote components such as
`eks:index:Cluster` the outputs a real deployment would. Secret inputs stay marked, so nothing that records or
prints resources can leak them.
"""

from __future__ import annotations

import json
import logging
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.settings import ROOT, SETTINGS
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

REPO = Path(__file__).resolve().parents[1]
STACKS = REPO / "stacks"
PROJECT = "llm-eks"
ACCOUNT = "123456789012"
SECRET = "[secret]"
PLACEHOLDER_TOKEN = "hf_offline_preview_placeholder"  # what a `secure:` value becomes: the real one never leaves Pulumi


class StackFileError(ValueError):
    """The stack file cannot be read at all (missing, not YAML)."""


@dataclass
class Registered:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str  # URN, "" for the stack
    provider: str
    dependencies: list[str]
    inputs: dict[str, Any]  # secrets still wrapped
    outputs: dict[str, Any] = field(default_factory=dict)
    protect: bool = False  # `pulumi destroy` refuses to delete it (its preview fails before any delete)
    retain_on_delete: bool = False  # Pulumi forgets it at destroy but leaves it in the cloud

    @property
    def is_kubernetes(self) -> bool:
        return self.type.startswith("kubernetes:") and not self.type.startswith("kubernetes:helm.sh")

    def plain_inputs(self) -> dict[str, Any]:
        """Inputs with secrets replaced by "[secret]" (safe to print and write)."""
        return redact(self.inputs)


@dataclass
class StackRun:
    stack: str
    resources: list[Registered]
    exports: dict[str, Any]
    warnings: list[str] = field(default_factory=list)  # what the program logged with pulumi.log.warn

    def by_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Registered:
        found = [r for r in self.by_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one {type_} {name or ''}, found {len(found)}")
        return found[0]

    def by_urn(self) -> dict[str, Registered]:
        return {r.urn: r for r in self.resources}

    def depends_on(self, a: Registered, b: Registered) -> bool:
        """True when `a` waits for `b` (directly or through other resources), so destroy removes `a` first."""
        index, seen, todo = self.by_urn(), set(), list(a.dependencies)
        while todo:
            urn = todo.pop()
            if urn == b.urn:
                return True
            if urn in seen or urn not in index:
                continue
            seen.add(urn)
            todo.extend(index[urn].dependencies)
        return False


def _walk(value: Any, leaf) -> Any:
    """Rebuild a decoded property tree, giving each secret-wrapped value and each plain leaf to `leaf`."""
    if isinstance(value, dict) and not rpc.is_rpc_secret(value):
        return {k: _walk(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, leaf) for v in value]
    return leaf(value)


def _hide(value: Any) -> Any:
    if not rpc.is_rpc_secret(value):
        return value
    inner = rpc.unwrap_rpc_secret(value)
    # The SDK lifts secretness to the enclosing map or list: keep its shape, hide every value.
    if isinstance(inner, dict):
        return {k: SECRET for k in inner}
    if isinstance(inner, list):
        return [SECRET for _ in inner]
    return SECRET


def redact(value: Any) -> Any:
    """Secrets replaced by "[secret]", shape kept."""
    return _walk(value, _hide)


def integral(value: Any) -> Any:
    """Protobuf carries every number as a double; give whole numbers back their int type (replicas: 1, not 1.0)."""
    return _walk(value, lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)


def unwrap(value: Any) -> Any:
    """The plain values, secrets revealed (for the mocks' own bookkeeping only)."""
    return _walk(value, lambda v: _walk(rpc.unwrap_rpc_secret(v), lambda x: x) if rpc.is_rpc_secret(v) else v)


# --- what providers would answer ----------------------------------------------------------------------------


def _kubeconfig(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": f"https://{name}.eks.example", "certificate-authority-data": "Cg=="}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "users": [{"name": name, "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                                   "command": "aws", "args": ["eks", "get-token", "--cluster-name", name]}}}],
    }


# What DescribeAvailabilityZones answers in an account that opted in to a Local Zone. Names map to ids differently
# in each account; here us-east-1c is use1-az3, where EKS places no subnets, and the Local Zone sorts first.
ZONES = [
    {"name": "{region}-bos-1a", "id": "use1-bos1-az1", "optInStatus": "opted-in", "zoneType": "local-zone"},
    *({"name": "{region}" + letter, "id": f"use1-az{n}", "optInStatus": "opt-in-not-required",
       "zoneType": "availability-zone"} for letter, n in zip("abcdef", (2, 4, 3, 6, 1, 5))),
]


def availability_zones(region: str, query: dict[str, Any]) -> dict[str, Any]:
    """getAvailabilityZones over ZONES, honouring its `filters` (opt-in-status, zone-type) and `excludeZoneIds`."""
    fields = {"opt-in-status": "optInStatus", "zone-type": "zoneType", "zone-id": "id"}
    zones = [{k: v.replace("{region}", region) for k, v in z.items()} for z in ZONES]
    for f in query.get("filters") or []:
        zones = [z for z in zones if z[fields[f["name"]]] in f["values"]]
    zones = [z for z in zones if z["id"] not in (query.get("excludeZoneIds") or [])]
    zones.sort(key=lambda z: z["name"])
    return {"names": [z["name"] for z in zones], "zoneIds": [z["id"] for z in zones], "id": region}


class Mocks(pulumi.runtime.Mocks):
    """Provider answers: ids and ARNs derived from names; remote components get their documented outputs."""

    def __init__(self, region: str):
        self.region = region

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        name, inputs = args.name, dict(args.inputs)
        outputs = dict(inputs)
        kind = args.typ
        if kind == "eks:index:Cluster":
            cluster = unwrap(inputs.get("name", name))
            outputs.update(
                kubeconfig=_kubeconfig(cluster),
                kubeconfigJson=json.dumps(_kubeconfig(cluster)),
                clusterSecurityGroupId=f"sg-{cluster}-cluster",
                nodeSecurityGroupId=f"sg-{cluster}-node",
            )
        elif kind.startswith("aws:iam/"):
            resource = kind.split("/")[1].split(":")[0]
            outputs.setdefault("name", name)
            outputs["arn"] = f"arn:aws:iam::{ACCOUNT}:{resource.lower()}/{outputs['name']}"
        elif kind == "aws:sqs/queue:Queue":
            queue = unwrap(inputs.get("name", name))
            outputs.update(name=queue, arn=f"arn:aws:sqs:{self.region}:{ACCOUNT}:{queue}",
                           url=f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT}/{queue}")
        elif kind == "aws:s3/bucket:Bucket":
            bucket = unwrap(inputs.get("bucket") or f"{inputs.get('bucketPrefix', '')}{name}")
            outputs.update(bucket=bucket, id=bucket, arn=f"arn:aws:s3:::{bucket}")
        elif kind.startswith("aws:"):
            outputs.setdefault("arn", f"arn:aws:{kind.split(':')[1].split('/')[0]}:{self.region}:{ACCOUNT}:{name}")
        return f"{name}-id", outputs

    def call(self, args: pulumi_mocks.MockCallArgs):
        token = args.token
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return availability_zones(self.region, dict(args.args))
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/preview", "userId": "AIDPREVIEW", "id": ACCOUNT}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        raise NotImplementedError(f"the offline preview has no answer for {token}")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping each registration's parent and dependencies (the destroy order)."""

    def __init__(self, mocks: Mocks):
        super().__init__(mocks)
        self.registered: list[Registered] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = integral(rpc.deserialize_properties(request.object))
            self.registered.append(Registered(
                urn=response.urn, type=request.type, name=request.name, custom=bool(request.custom),
                parent=request.parent, provider=request.provider, dependencies=list(request.dependencies),
                inputs=inputs, outputs=self.resources[response.urn].state,
                protect=bool(request.protect), retain_on_delete=bool(request.retainOnDelete),
            ))
        return response


# --- stack files --------------------------------------------------------------------------------------------


def stack_file(stack: str) -> Path:
    return STACKS / f"Pulumi.{stack}.yaml"


def available_stacks(target: str | None = None) -> list[str]:
    """The stacks in stacks/, or only those deploying to `target` (eks | sagemaker; a file without the key is eks)."""
    names = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in STACKS.glob("Pulumi.*.yaml"))
    if target is None:
        return names
    return [n for n in names if _target(stack_file(n)) == target]


def _target(path: Path) -> str:
    config = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("config") or {}
    return str(config.get("llm-eks:target", "eks"))


# PyYAML reports a problem where it noticed it, which for these constructs is past the mistake (a key without its
# ':' on line 12 is noticed on line 13): the construct's own start (context_mark) is where the mistake is.
_STARTS_AT_THE_MISTAKE = ("while scanning a simple key", "while scanning a quoted scalar",
                          "while scanning a plain scalar", "while parsing a flow")


def _yaml_reason(exc: yaml.YAMLError) -> str:
    """The parser's reason and where the mistake is, once: 'line 4, column 9: mapping values are not allowed here'."""
    context = getattr(exc, "context", None) or ""
    at_start = context.startswith(_STARTS_AT_THE_MISTAKE) and getattr(exc, "context_mark", None) is not None
    mark = exc.context_mark if at_start else (  # type: ignore[attr-defined]
        getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None))
    reason = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    context = getattr(exc, "context", None)
    if context and getattr(exc, "problem", None) and context != reason:
        reason = f"{reason} ({context})"
    return where + reason


def read_stack_config(path: Path) -> tuple[dict[str, str], list[str]]:
    """A stack file's config as the Pulumi engine hands it to a program: flat keys, objects as JSON, secrets marked."""
    if not path.exists():
        known = ", ".join(available_stacks()) or "none"
        raise StackFileError(f"no such stack file (stacks: {known})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise StackFileError(f"not valid YAML: {_yaml_reason(exc)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("config", {}), dict):
        raise StackFileError("expected a mapping with a 'config:' section")
    config: dict[str, str] = {}
    secrets: list[str] = []
    for key, value in (data.get("config") or {}).items():
        if ":" not in key:
            key = f"{PROJECT}:{key}"  # Pulumi puts bare keys in the project's namespace
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = PLACEHOLDER_TOKEN
            secrets.append(key)
        elif isinstance(value, (dict, list)):
            config[key] = json.dumps(value, default=str)  # an unquoted date stays text, as Pulumi would pass it
        elif isinstance(value, bool):
            config[key] = "true" if value else "false"
        else:
            config[key] = str(value)
    return config, secrets


class _EngineLog(logging.Handler):
    """Keeps what the program logs through pulumi.log (the engine's diagnostics), instead of printing it."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.warnings: list[str] = []
        self.logger = logging.Logger("llm-eks.preview.engine")  # not registered globally: one per run
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.warnings.append(record.getMessage())


def run_stack(stack: str, config: dict[str, str] | None = None, secrets: list[str] | None = None,
              program: Path = REPO / "__main__.py") -> StackRun:
    """Run the program for `stack` (or for an explicit config) under mocks and return what it registered."""
    if config is None:
        config, secrets = read_stack_config(stack_file(stack))
    region = config.get("aws:region", "us-east-1")
    mocks = Mocks(region)
    monitor = RecordingMonitor(mocks)
    ROOT.set(None)  # a fresh root stack per run
    pulumi.runtime.set_all_config(config, secrets or [])
    log = _EngineLog()
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor, logger=log.logger)
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    stack_resource = pulumi.runtime.settings.get_root_resource()
    try:
        _sync_await(run_pulumi_func(lambda: runpy.run_path(str(program), run_name="__main__")))
    except BaseException as exc:
        exc.registered = monitor.registered  # type: ignore[attr-defined]  (what got registered before the failure)
        raise
    exports = {}
    if stack_resource is not None and getattr(stack_resource, "outputs", None):
        exports = {k: v for k, v in stack_resource.outputs.items()}
    return StackRun(stack=stack, resources=monitor.registered, exports=_resolve_exports(exports), warnings=log.warnings)


def _resolve_exports(exports: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in exports.items():
        output = pulumi.Output.from_input(value)
        out[key] = SECRET if _sync_await(output.is_secret()) else _sync_await(output.future())
    return out
