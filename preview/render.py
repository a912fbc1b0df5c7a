"""Turn a recorded stack run into files (plan.json, one YAML per Kubernetes object) and a monthly cost estimate."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from plan.cost import Cost
from plan.models import ModelPlan

from .harness import Registered, StackRun

HELM = "kubernetes:helm.sh/v3:Release"


def manifest(res: Registered) -> dict[str, Any]:
    """The Kubernetes object a resource would apply, from its recorded inputs (secrets already "[secret]")."""
    inputs = res.plain_inputs()
    out = {"apiVersion": inputs.pop("apiVersion"), "kind": inputs.pop("kind")}
    if "metadata" in inputs:
        out["metadata"] = inputs.pop("metadata")
    out.update(inputs)
    return out


def manifests(run: StackRun) -> list[dict[str, Any]]:
    return [manifest(r) for r in run.resources if r.is_kubernetes and r.type != "pulumi:providers:kubernetes"
            and not r.type.startswith("pulumi:")]


def helm_releases(run: StackRun) -> list[dict[str, Any]]:
    out = []
    for r in run.by_type(HELM):
        i = r.plain_inputs()
        out.append({
            "release": i.get("name", r.name), "chart": i["chart"], "version": i.get("version"),
            "repository": (i.get("repositoryOpts") or {}).get("repo", ""), "namespace": i.get("namespace"),
            "skipCrds": bool(i.get("skipCrds", False)), "values": i.get("values") or {},
        })
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-")


def quantities(values: dict[str, Any]) -> str:
    """Kubernetes quantities as a user reads them: cpu=6570m memory=28672Mi nvidia.com/gpu=1."""
    return " ".join(f"{k}={v}" for k, v in values.items())


def canonical(value: Any) -> Any:
    """The same data with every mapping's keys sorted: the files do not depend on the order things registered in."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def _dump(data: dict[str, Any], head: tuple[str, ...]) -> str:
    """YAML with the `head` keys first (apiVersion, kind, metadata, as kubectl shows them), the rest sorted."""
    ordered = {k: canonical(data[k]) for k in head if k in data}
    ordered.update({k: canonical(data[k]) for k in sorted(data) if k not in ordered})
    return yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)


def plan_json(plan_doc: dict[str, Any]) -> str:
    return json.dumps(plan_doc, indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n"


def files(run: StackRun, plan_doc: dict[str, Any]) -> dict[str, str]:
    """Every file the preview writes, by path relative to build/<stack>/: names from what each object is (kind,
    namespace, name), never from the order it registered in, so two runs of one stack give identical trees."""
    out: dict[str, str] = {}

    def add(stem: str, text: str) -> None:
        name, n = f"manifests/{stem}.yaml", 2
        while name in out:  # kind/namespace/name is unique in a cluster; this only guards the slug
            name, n = f"manifests/{stem}-{n}.yaml", n + 1
        out[name] = text

    objects = []
    for m in manifests(run):
        meta = m.get("metadata") or {}
        stem = _slug("-".join(p for p in (m["kind"], meta.get("namespace", ""), meta.get("name", "")) if p))
        objects.append((stem, _dump(m, ("apiVersion", "kind", "metadata"))))
    for rel in helm_releases(run):
        doc = {"kind": "HelmRelease (helm.v3.Release)", **rel}
        objects.append((f"helm-{_slug(rel['release'])}", _dump(doc, ("kind", "release", "chart", "version", "repository",
                                                                      "namespace", "skipCrds"))))
    for stem, text in sorted(objects):
        add(stem, text)
    out["plan.json"] = plan_json(plan_doc)
    return out


def write(run: StackRun, out_dir: Path, plan_doc: dict[str, Any]) -> list[Path]:
    """build/<stack>/plan.json and build/<stack>/manifests/*.yaml. The manifests folder ends up holding exactly the
    current plan's files: files a previous run wrote for resources that are gone are deleted. Returns the manifests."""
    wanted = files(run, plan_doc)
    mdir = out_dir / "manifests"
    mdir.mkdir(parents=True, exist_ok=True)
    for old in sorted(mdir.iterdir()):
        if f"manifests/{old.name}" not in wanted:
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
    for rel, text in wanted.items():
        path = out_dir / rel
        data = text.encode("utf-8")
        if not path.exists() or path.read_bytes() != data:  # unchanged files keep their mtime
            path.write_bytes(data)
    return [out_dir / rel for rel in wanted if rel.startswith("manifests/")]


def plan_document(run: StackRun, plans: list[ModelPlan], cost: Cost) -> dict[str, Any]:
    index = run.by_urn()
    return {
        "stack": run.stack,
        "models": [{
            "name": p.name, "server": p.server, "server_args": list(p.server_args), "endpoint": p.endpoint,
            "rollout_surge": p.rollout_surge, "node_limits": p.node_limits, "startup_seconds": p.startup_seconds,
            "weights": {"source": p.weights.source, "prefix": p.weights.prefix if p.weights.cached else None,
                        "revision": p.weights.revision},
            "cold_start": p.cold_start.to_dict(),
            # scale to zero: how long a request may wait for a replica (0: the model never sleeps)
            "scales_to_zero": p.scales_to_zero, "wake_s": p.wake_s,
            "autoscaling": p.scaling.__dict__ if p.scaling else None, **p.plan.to_dict(),
        } for p in plans],
        "cost": cost.to_dict(),
        "exports": run.exports,
        "warnings": sorted(set(run.warnings)),
        "resources": [{  # by URN: the order resources register in varies from run to run
            "type": r.type, "name": r.name, "urn": r.urn, "custom": r.custom,
            "parent": index[r.parent].name if r.parent in index else None,
            "dependencies": sorted(index[d].name for d in r.dependencies if d in index),
            "inputs": r.plain_inputs(),
            "protect": r.protect, "retainOnDelete": r.retain_on_delete,
        } for r in sorted(run.resources, key=lambda r: r.urn)],
    }

