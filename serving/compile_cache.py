"""The Neuron compile cache on S3: the compiled model that vllm-neuron (NxD Inference) saves in and reloads from
NEURON_COMPILED_ARTIFACTS, restored from s3://<bucket>/neuron-compiled/<shape>/ before the engine starts and saved
there after the first compile, so the second worker and every restart load it instead of compiling (tens of
minutes for an 8B model). The Ray worker's Pod Identity role may read and write that prefix only
(components/ray_service.py).

vllm-neuron 0.16's own compile cache (the Neuron persistent cache, NEURON_COMPILE_CACHE_URL) caches neuronx-cc's
per-graph NEFFs; NxD Inference's compiled model directory is the whole of what a start reloads, so that directory is
what is kept. The marker is written last: a worker killed mid-upload leaves no marker, and the next one compiles.
A failure here never stops serving: without boto3 or S3 access the worker compiles as before.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

ENV = "LLM_EKS_COMPILE_CACHE"  # s3://<bucket>/<prefix>, set on the Ray workers
MARKER = "llm-eks-complete.json"

log = logging.getLogger(__name__)


def _split(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise ValueError(f"{ENV}: {url!r} is not an s3:// URL")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    return bucket, prefix.strip("/")


def _objects(s3, bucket: str, prefix: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        out.update({o["Key"][len(prefix) + 1:]: o["Size"] for o in page.get("Contents", [])})
    return out


def restore(url: str, local: str | Path, s3=None) -> bool:
    """Download a complete cached compile into `local`; False when there is none (or S3 cannot be read)."""
    try:
        s3 = s3 or _client()
        bucket, prefix = _split(url)
        have = _objects(s3, bucket, prefix)
        if MARKER not in have:
            log.info("no compiled model at %s: compiling", url)
            return False
        for key in sorted(k for k in have if k != MARKER):
            target = Path(local) / key
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, f"{prefix}/{key}", str(target))
        log.info("restored %d compiled files from %s", len(have) - 1, url)
        return True
    except Exception as exc:  # noqa: BLE001 - the cache is an optimisation: compile instead
        log.warning("compile cache %s not restored (%s): compiling", url, exc)
        return False


def save(url: str, local: str | Path, s3=None) -> int:
    """Upload the compiled model under `local` (files already there with the same size are skipped), marker last;
    the number of files uploaded."""
    try:
        s3 = s3 or _client()
        bucket, prefix = _split(url)
        root = Path(local)
        files = sorted(p for p in root.rglob("*") if p.is_file())
        have = _objects(s3, bucket, prefix)
        sent = 0
        for p in files:
            key = p.relative_to(root).as_posix()
            if have.get(key) != p.stat().st_size:
                s3.upload_file(str(p), bucket, f"{prefix}/{key}")
                sent += 1
        if files:
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{MARKER}",
                          Body=json.dumps({"files": len(files)}).encode(), ContentType="application/json")
        log.info("saved %d compiled files to %s", sent, url)
        return sent
    except Exception as exc:  # noqa: BLE001 - never stop a server that compiled fine
        log.warning("compile cache %s not saved (%s)", url, exc)
        return 0


def _client():
    import boto3

    return boto3.client("s3")
