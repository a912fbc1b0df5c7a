"""Offline schema checks for what the program renders: Kubernetes objects, custom resources, Helm values.

Mocks accept any property, so these checks are what catches a misspelt field or Helm key before a real
deployment does. The program tests and the offline preview both call this module (one code path).
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

from tests import upstream as upstream_files

SHARED = upstream_files.root()
"""The pinned upstream files (crds/, charts/): the steering repo's ../shared where it is beside the checkout (CI, the
developers), else the cache tests/upstream.py fills from GitHub."""

K8S_VERSION = "1.34"

# API groups built into Kubernetes: these go to kubernetes-validate, everything else needs a CRD.
# Listed by name, not guessed from kubernetes-validate's file names: those keep only the group's first label,
# so "apps.example.com/v1" would otherwise look like "apps/v1".
CORE_GROUPS = frozenset({
    "", "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io", "apps",
    "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch", "certificates.k8s.io",
    "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io", "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io", "networking.k8s.io", "node.k8s.io", "policy", "rbac.authorization.k8s.io",
    "resource.k8s.io", "scheduling.k8s.io", "storage.k8s.io", "storagemigration.k8s.io",
})

# Helm values keys whose value is a Kubernetes object (or map) that charts paste in verbatim with toYaml:
# upstream's default (e.g. Karpenter's non-empty `affinity`) is an example, not a schema.
K8S_PASSTHROUGH_KEYS = frozenset({
    "affinity", "annotations", "containerSecurityContext", "env", "envFrom", "extraEnv", "labels",
    "livenessProbe", "nodeSelector", "podAnnotations", "podLabels", "podSecurityContext", "readinessProbe",
    "resources", "securityContext", "startupProbe", "strategy", "tolerations", "topologySpreadConstraints",
    "updateStrategy",
})

_DEFS_ID = "https://kubernetes.io/api/_definitions.json"
_OBJECT_META = {"$ref": f"{_DEFS_ID}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}


def require_shared() -> None:
    """Fail the calling test, naming the files, where the pinned upstream files are neither at hand nor fetchable."""
    import pytest  # imported here: the offline preview uses this module without pytest

    try:
        upstream_files.ensure(SHARED)
    except upstream_files.UpstreamMissing as exc:
        pytest.fail(str(exc), pytrace=False)


# --------------------------------------------------------------------------- helpers


def _split_api_version(api_version: str) -> tuple[str, str]:
    """'apps/v1' -> ('apps', 'v1'); 'v1' -> ('', 'v1')."""
    group, _, version = api_version.rpartition("/")
    return group, version


def _errors(validator: jsonschema.protocols.Validator, instance: Any) -> list[str]:
    """Every error (not just jsonschema's best match), sorted, as '$.json.path: message'."""
    found = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{e.json_path}: {e.message}" for e in found]


def _metadata_errors(manifest: dict) -> list[str]:
    """Our manifests are applied as written (preview), so every object needs an explicit metadata.name."""
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict):
        return ["$.metadata: required object is missing"]
    if not metadata.get("name"):
        return ["$.metadata.name: required (set it explicitly)"]
    return []


def _api_errors(manifest: Any) -> list[str]:
    """apiVersion and kind are needed to find a schema at all."""
    if not isinstance(manifest, dict):
        return [f"$: expected a mapping, got {type(manifest).__name__}"]
    return [f"$.{key}: required string is missing" for key in ("apiVersion", "kind")
            if not isinstance(manifest.get(key), str) or not manifest[key]]


# --------------------------------------------------------------------------- built-in kinds


def _minor(k8s_version: str) -> str:
    """'v1.34.2' -> '1.34' (one cache entry per minor version, whatever the spelling)."""
    return ".".join(k8s_version.removeprefix("v").split(".")[:2])


@functools.cache
def _schema_dir(minor: str) -> importlib.resources.abc.Traversable:
    """The package's strict schemas for exactly this minor version (no silent fallback to an older one)."""
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    folder = root / f"v{minor}.0-local-strict"
    if minor.count(".") != 1 or not folder.is_dir():
        have = sorted((p.name for p in root.iterdir() if p.name.endswith("-local-strict")),
                      key=lambda n: tuple(int(x) for x in n[1:].split("-")[0].split(".")))
        raise ValueError(f"kubernetes-validate has no strict schemas for Kubernetes {minor!r} "
                         f"(has {have[0]} .. {have[-1]})")
    return folder


@functools.cache
def _k8s_registry(minor: str) -> Registry:
    """The 1.5 MB _definitions.json every kind schema $refs into, parsed once per version."""
    defs = json.loads((_schema_dir(minor) / "_definitions.json").read_text())
    return Resource.from_contents(defs) @ Registry()


@functools.cache
def _core_validator(minor: str, api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    """Validator for one built-in kind, built as kubernetes_validate.validate() builds it; None if unknown."""
    group, version = _split_api_version(api_version)
    # kubernetes-validate's file naming: <kind>-<first label of group>-<version>.json, or <kind>-<version>.json.
    stem = f"{group.split('.')[0]}-{version}" if group else version
    path = _schema_dir(minor) / f"{kind.lower()}-{stem}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    # The folder also holds non-top-level types (podspec-v1.json ...): only a real group/version/kind counts.
    if {"group": group, "version": version, "kind": kind} not in schema.get("x-kubernetes-group-version-kind", []):
        return None
    return jsonschema.Draft202012Validator(schema, registry=_k8s_registry(minor))


def validate_core(manifest: dict, k8s_version: str = K8S_VERSION) -> list[str]:
    """Strictly validate one built-in Kubernetes object; return error strings ('$.path: message'), [] if valid.

    Uses kubernetes-validate's `-local-strict` schemas (`additionalProperties: false` on every object, so an
    unknown field is an error) for exactly `k8s_version` ("1.34", "v1.34" or "1.34.2"); an unsupported version
    raises ValueError. Unlike kubernetes_validate.validate(), which raises on jsonschema's single best match,
    this reports every error. A kind without a schema is an error, never a pass.
    """
    if errors := _api_errors(manifest):
        return errors
    validator = _core_validator(_minor(k8s_version), manifest["apiVersion"], manifest["kind"])
    if validator is None:
        return [f"no schema for {manifest['apiVersion']}/{manifest['kind']} in Kubernetes {k8s_version}"]
    return _metadata_errors(manifest) + _errors(validator, manifest)


# --------------------------------------------------------------------------- custom resources


@functools.cache
def _crd_index(crd_dir: Path) -> dict[tuple[str, str, str], tuple[dict, dict]]:
    """(group, version, kind) -> (CRD, that served version's openAPIV3Schema), for every CRD file in crd_dir."""
    index: dict[tuple[str, str, str], tuple[dict, dict]] = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the RayService CRD is 1 MB: C loader, 0.1 s
    for path in sorted(crd_dir.glob("*.y*ml")) + sorted(crd_dir.glob("*.json")):
        with path.open() as f:
            for doc in yaml.load_all(f, Loader=loader):
                if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for v in spec["versions"]:
                    if v.get("served"):
                        key = (spec["group"], v["name"], spec["names"]["kind"])
                        index[key] = (doc, v["schema"]["openAPIV3Schema"])
    return index


def _structural_to_json_schema(node: Any) -> Any:
    """Kubernetes structural schema -> JSON Schema with the apiserver's Strict field validation.

    - objects (type object or with properties) get `additionalProperties: false` unless they set
      additionalProperties or `x-kubernetes-preserve-unknown-fields: true` (then unknown fields are kept);
    - `nullable: true` adds null to type/enum; `x-kubernetes-int-or-string` without anyOf becomes one;
    - OpenAPI 3.0 boolean exclusiveMinimum/Maximum become the JSON Schema numbers;
    - `x-kubernetes-embedded-resource` objects accept apiVersion/kind/metadata.
    Other x-kubernetes-* keys are left in place: jsonschema ignores unknown keywords.
    """
    if isinstance(node, list):
        return [_structural_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if k not in ("default", "example", "nullable")}
    for key in ("properties", "patternProperties"):
        if isinstance(out.get(key), dict):
            out[key] = {name: _structural_to_json_schema(sub) for name, sub in out[key].items()}
    for key in ("items", "additionalProperties", "not", "anyOf", "allOf", "oneOf"):
        if isinstance(out.get(key), (dict, list)):
            out[key] = _structural_to_json_schema(out[key])
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if out.get("x-kubernetes-int-or-string") and "anyOf" not in out and "type" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    for key in ("Minimum", "Maximum"):
        if isinstance(out.get(f"exclusive{key}"), bool):
            if out.pop(f"exclusive{key}") and f"{key.lower()}" in out:
                out[f"exclusive{key}"] = out.pop(key.lower())
    if out.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    is_object = out.get("type") == "object" or "properties" in out
    if is_object and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _int_format(bits: int) -> Any:
    """format int32/int64: the apiserver rejects out-of-range integers."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return lambda value: not isinstance(value, int) or lo <= value <= hi


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("int32")(_int_format(32))
_FORMATS.checks("int64")(_int_format(64))


@functools.cache
def _custom_validator(crd_dir: Path, api_version: str, kind: str,
                      minor: str) -> tuple[jsonschema.protocols.Validator, dict] | None:
    """Validator for one custom resource kind from its CRD, plus the CRD; None if crd_dir has no such CRD."""
    group, version = _split_api_version(api_version)
    found = _crd_index(crd_dir).get((group, version, kind))
    if found is None:
        return None
    crd, openapi = found
    schema = _structural_to_json_schema(copy.deepcopy(openapi))
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"const": api_version}
    props["kind"] = {"const": kind}
    props["metadata"] = _OBJECT_META  # the apiserver checks ObjectMeta itself; the CRD only says "object"
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    validator = jsonschema.Draft202012Validator(schema, registry=_k8s_registry(minor),
                                                format_checker=_FORMATS)
    return validator, crd


def validate_custom(manifest: dict, crd_dir: Path, *, k8s_version: str = K8S_VERSION) -> list[str]:
    """Validate a custom resource against the served CRD version in crd_dir; error strings, [] if valid.

    Unknown fields are errors (as with kubectl's/Pulumi's Strict field validation), types, enums, patterns,
    required fields, min/max, int32/int64 ranges and int-or-string are checked, and metadata is checked
    against Kubernetes' ObjectMeta (k8s_version's schema). NOT checked: the CRD's `x-kubernetes-validations`
    CEL rules (e.g. EC2NodeClass "exactly one of role/instanceProfile", the amiSelectorTerms alias format),
    list-type set/map uniqueness, and defaults; assert what matters among those in the program tests.
    """
    if errors := _api_errors(manifest):
        return errors
    found = _custom_validator(Path(crd_dir).resolve(), manifest["apiVersion"], manifest["kind"], _minor(k8s_version))
    if found is None:
        return [f"no CRD for {manifest['apiVersion']}/{manifest['kind']} in {crd_dir}"]
    validator, crd = found
    errors = _metadata_errors(manifest) + _errors(validator, manifest)
    if crd["spec"].get("scope") == "Cluster" and "namespace" in (manifest.get("metadata") or {}):
        errors.append(f"$.metadata.namespace: {manifest['kind']} is cluster-scoped and takes no namespace")
    return errors


def validate_manifest(manifest: dict, crd_dir: Path | None, k8s_version: str = K8S_VERSION) -> list[str]:
    """One object, any kind: built-in API groups -> validate_core, CRDs in crd_dir -> validate_custom.

    Anything else is an error ("no schema for <apiVersion>/<kind>"): an object nothing can check is not a pass.
    """
    if errors := _api_errors(manifest):
        return errors
    group, _ = _split_api_version(manifest["apiVersion"])
    if group in CORE_GROUPS:
        return validate_core(manifest, k8s_version)
    if crd_dir is not None and _custom_validator(Path(crd_dir).resolve(), manifest["apiVersion"],
                                                 manifest["kind"], _minor(k8s_version)) is not None:
        return validate_custom(manifest, crd_dir, k8s_version=k8s_version)
    return [f"no schema for {manifest['apiVersion']}/{manifest['kind']}"]


# --------------------------------------------------------------------------- Helm values


@functools.cache
def _upstream_values(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) or {}


def _unknown_keys(ours: Any, upstream: Any, path: tuple[str, ...],
                  free_form: frozenset[tuple[str, ...]]) -> Iterator[str]:
    if not isinstance(ours, dict):
        return
    for key, value in ours.items():
        here = (*path, str(key))
        if here in free_form or str(key) in K8S_PASSTHROUGH_KEYS or here == ("global",):
            continue
        if not isinstance(upstream, dict) or key not in upstream:
            yield ".".join(here)
            continue
        default = upstream[key]
        if isinstance(default, dict) and default:  # a non-empty map upstream is a schema: recurse
            yield from _unknown_keys(value, default, here, free_form)
        elif default is not None and not isinstance(default, (dict, list)) and isinstance(value, dict):
            yield from (".".join((*here, str(k))) for k in value)  # a map where upstream has a scalar
        # {} / [] / null upstream: free-form, anything below is accepted


def unknown_helm_values(values: dict, upstream_values_yaml: Path, free_form: Iterable[str] = ()) -> list[str]:
    """Dotted paths of keys in our Helm values that the chart's upstream values.yaml does not have.

    Helm ignores unknown keys silently, so a misspelt key is a bug no mock can see. The rule: walk our values
    against upstream's defaults, recursing where upstream has a non-empty map. Not walked (anything below is
    accepted): keys whose upstream default is an empty map {}, a list or null (free-form in the chart); keys
    named in K8S_PASSTHROUGH_KEYS at any depth (affinity, nodeSelector, resources, tolerations, ...: Kubernetes
    objects the chart pastes in, whatever upstream's example default); top-level `global` (Helm's own); and
    the dotted `free_form` prefixes the caller passes (e.g. a subchart's values such as "ollama").
    A map where upstream has a scalar reports its keys. Lists are never walked.
    """
    prefixes = frozenset(tuple(p.split(".")) for p in free_form)
    return sorted(_unknown_keys(values, _upstream_values(Path(upstream_values_yaml).resolve()), (), prefixes))
