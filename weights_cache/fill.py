"""Fill the stack's S3 weights cache with one model revision from the Hugging Face Hub, resumably.

    python fill.py --repo-id Qwen/Qwen3-1.7B --revision main --bucket B --prefix models/Qwen/Qwen3-1.7B/main
    python fill.py --source-dir DIR --bucket B --prefix P        (a local directory as the source: tests, air gaps)

Two callers, one code: the EKS fill Job (components/weights_cache.py) runs this file from a ConfigMap on a plain Python
image, once per model revision, before the server starts (vLLM then streams s3://B/P with --load-format
runai_streamer); the SageMaker stack's Lambda (components/sagemaker_weights.py) runs `lambda_handler`, with the Hub
token read from Secrets Manager, and the endpoint loads the prefix into /opt/ml/model.
Each file streams from the Hub into a multipart upload: no local disk. Resumable: an object already under the prefix
with the file's size is skipped, so a run killed midway (node reclaimed, deadline, Lambda's 15 minutes) uploads only
the rest when it runs again. The completion marker (MARKER) is written last: its presence means every file is there.
Standard library and boto3 only (the Lambda runtime has both), and no llm-eks imports: it ships alone.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

MARKER = "llm-eks-complete.json"  # written last, under the prefix; vLLM's loader reads *.json beside the weights: harmless
# Not copied: formats the Run:ai streamer does not load (it reads safetensors; the configs and tokenizer beside them
# are plain files), which many repositories carry beside the safetensors (Llama 3's original/ holds a second 16 GB copy).
CHUNK = 64 * 1024 * 1024
SKIPPED = ("*.bin", "*.pt", "*.pth", "*.gguf", "*.onnx", "*.h5", "*.msgpack", "*.ot", "original/*", ".gitattributes")


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative, '/'-separated: the object key under the prefix
    size: int


class Source(Protocol):
    def files(self) -> list[SourceFile]: ...
    def open(self, path: str) -> BinaryIO: ...


class DirectorySource:
    """A local directory as the source (an offline copy of a model repository)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def files(self) -> list[SourceFile]:
        return sorted((SourceFile(p.relative_to(self.root).as_posix(), p.stat().st_size)
                       for p in self.root.rglob("*") if p.is_file()), key=lambda f: f.path)

    def open(self, path: str) -> BinaryIO:
        return (self.root / path).open("rb")


class _DropAuthOnOtherHost(urllib.request.HTTPRedirectHandler):
    """The Hub redirects downloads to its CDN with a signed URL: the token must not follow to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


class HubSource:
    """One revision of a Hub model repository, read over the Hub's HTTP API: the file list with sizes
    (`/api/models/<id>/revision/<rev>?blobs=true`), each file streamed from `/<id>/resolve/<commit>/<path>`."""

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    timeout_s = 60

    def __init__(self, repo_id: str, revision: str, token: str | None):
        self.repo_id, self.revision, self.token = repo_id, revision, token
        self.commit = revision  # resolved by files(): every file then comes from one commit

    def _open(self, url: str) -> BinaryIO:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        opener = urllib.request.build_opener(_DropAuthOnOtherHost)
        return opener.open(urllib.request.Request(url, headers=headers), timeout=self.timeout_s)

    def files(self) -> list[SourceFile]:
        rev = urllib.parse.quote(self.revision, safe="")
        with self._open(f"{self.endpoint}/api/models/{self.repo_id}/revision/{rev}?blobs=true") as response:
            info = json.load(response)
        self.commit = info.get("sha") or self.revision
        return sorted((SourceFile(s["rfilename"], int(s.get("size") or s.get("lfs", {}).get("size", 0)))
                       for s in info.get("siblings", [])), key=lambda f: f.path)

    def open(self, path: str) -> BinaryIO:
        return self._open(f"{self.endpoint}/{self.repo_id}/resolve/{self.commit}/{urllib.parse.quote(path)}")


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
    from boto3.s3.transfer import TransferConfig

    uploaded = skipped = 0
    for f in files:
        if have.get(f.path) == f.size:
            skipped += 1
            continue
        with source.open(f.path) as body:  # streamed into a multipart upload, 64 MiB parts
            s3.upload_fileobj(body, bucket, f"{prefix}/{f.path}", Config=TransferConfig(multipart_chunksize=CHUNK))
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


def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, int]:
    """The SageMaker stack's copy: event {model, revision, bucket, prefix, token_secret_arn}; the token comes from
    Secrets Manager, never from the function's environment."""
    import boto3

    token = None
    if event.get("token_secret_arn"):
        token = boto3.client("secretsmanager").get_secret_value(SecretId=event["token_secret_arn"])["SecretString"]
    source = HubSource(event["model"], event.get("revision", "main"), token)
    return fill(source, boto3.client("s3"), event["bucket"], event["prefix"])


if __name__ == "__main__":
    sys.exit(main())
