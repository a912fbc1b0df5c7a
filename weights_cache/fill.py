"""Fill the stack's S3 weights cache with one model revision from the Hugging Face Hub, resumably.

    python fill.py --repo-id Qwen/Qwen3-1.7B --revision main --bucket B --prefix models/Qwen/Qwen3-1.7B/main
    python fill.py --source-dir DIR --bucket B --prefix P        (a local directory as the source: tests, air gaps)

The fill Job (components/weights_cache.py) runs this file from a ConfigMap on a plain Python image, once per model
revision, before the server starts; vLLM then streams the weights from s3://B/P with --load-format runai_streamer.
One file at a time (download, upload, delete), so the pod's disk holds one file, not the model. Resumable: an object
already under the prefix with the file's size is skipped, so a Job killed midway (node reclaimed, deadline) uploads
only the rest when it runs again. The completion marker (MARKER) is written last: its presence means every file is
there. Standalone on purpose (no llm-eks imports): it ships alone in a ConfigMap.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

MARKER = "llm-eks-complete.json"  # written last, under the prefix; vLLM's loader reads *.json beside the weights: harmless
# Not copied: formats the Run:ai streamer does not load (it reads safetensors; the configs and tokenizer beside them
# are plain files), which many repositories carry beside the safetensors (Llama 3's original/ holds a second 16 GB copy).
SKIPPED = ("*.bin", "*.pt", "*.pth", "*.gguf", "*.onnx", "*.h5", "*.msgpack", "*.ot", "original/*", ".gitattributes")


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative, '/'-separated: the object key under the prefix
    size: int


class Source(Protocol):
    def files(self) -> list[SourceFile]: ...
    def fetch(self, path: str, workdir: Path) -> Path: ...


class DirectorySource:
    """A local directory as the source (an offline copy of a model repository)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def files(self) -> list[SourceFile]:
        return sorted((SourceFile(p.relative_to(self.root).as_posix(), p.stat().st_size)
                       for p in self.root.rglob("*") if p.is_file()), key=lambda f: f.path)

    def fetch(self, path: str, workdir: Path) -> Path:
        return self.root / path


class HubSource:
    """One revision of a Hub model repository: its file list with sizes, each file downloaded on demand."""

    def __init__(self, repo_id: str, revision: str, token: str | None):
        self.repo_id, self.revision, self.token = repo_id, revision, token

    def files(self) -> list[SourceFile]:
        from huggingface_hub import HfApi
        from huggingface_hub.hf_api import RepoFile

        tree = HfApi().list_repo_tree(self.repo_id, recursive=True, revision=self.revision, token=self.token)
        return sorted((SourceFile(f.path, f.size) for f in tree if isinstance(f, RepoFile)), key=lambda f: f.path)

    def fetch(self, path: str, workdir: Path) -> Path:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(self.repo_id, path, revision=self.revision, token=self.token, local_dir=workdir))


def _existing(s3, bucket: str, prefix: str) -> dict[str, int]:
    """Key (relative to the prefix) -> size of every object already under the prefix."""
    out: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            out[obj["Key"][len(prefix) + 1:]] = obj["Size"]
    return out


def _log(**event) -> None:
    print(json.dumps(event), flush=True)


def fill(source: Source, s3, bucket: str, prefix: str) -> dict[str, int]:
    """Upload every source file missing under s3://bucket/prefix (or there with another size), then the marker."""
    prefix = prefix.strip("/")
    have = _existing(s3, bucket, prefix)
    files = [f for f in source.files() if not any(fnmatch.fnmatch(f.path, pattern) for pattern in SKIPPED)]
    if have.get(MARKER) is not None and all(have.get(f.path) == f.size for f in files):
        _log(event="complete", uploaded=0, skipped=len(files))
        return {"uploaded": 0, "skipped": len(files)}
    uploaded = skipped = 0
    with tempfile.TemporaryDirectory(prefix="fill-") as work:
        for f in files:
            if have.get(f.path) == f.size:
                skipped += 1
                continue
            local = source.fetch(f.path, Path(work))
            s3.upload_file(str(local), bucket, f"{prefix}/{f.path}")
            if Path(work) in local.parents:
                local.unlink()  # one file on disk at a time
            uploaded += 1
            _log(event="uploaded", key=f"{prefix}/{f.path}", size=f.size)
    manifest = {"files": {f.path: f.size for f in files}, "total_bytes": sum(f.size for f in files)}
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{MARKER}", Body=json.dumps(manifest).encode(),
                  ContentType="application/json")
    _log(event="complete", uploaded=uploaded, skipped=skipped)
    return {"uploaded": uploaded, "skipped": skipped}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--repo-id", help="the Hub model id, e.g. Qwen/Qwen3-1.7B")
    src.add_argument("--source-dir", type=Path, help="a local directory instead of the Hub")
    p.add_argument("--revision", default="main", help="the Hub revision (branch, tag or commit)")
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", required=True, help="the key prefix, models/<hf-id>/<revision>")
    a = p.parse_args(argv)
    import boto3  # the AWS SDK's default chain: Pod Identity in the cluster, AWS_* variables in tests

    source: Source = (DirectorySource(a.source_dir) if a.source_dir
                      else HubSource(a.repo_id, a.revision, os.environ.get("HF_TOKEN") or None))
    fill(source, boto3.client("s3"), a.bucket, a.prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
