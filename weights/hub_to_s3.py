"""Copy one revision of a Hugging Face Hub model into S3, streaming (no local disk), resumably.

Runs as the SageMaker stack's weights Lambda (`lambda_handler`; the Hub token comes from Secrets Manager, never from
the environment) and as a plain function. Only what vLLM loads is copied: safetensors shards and index, config and
tokenizer files, the chat template; pickled `.bin` weights, GGUF and `original/` checkpoints are not. A file already
in S3 with the same size is skipped, and a marker object (`<prefix>.complete`, written last) says the copy is whole, so
a run cut off by the Lambda's 15 minutes resumes where it stopped on the next invocation.

Standard library and boto3 only: the Lambda runtime has both.
"""

from __future__ import annotations

import fnmatch
import json
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

HUB = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
WANTED = ("*.safetensors", "*.safetensors.index.json", "config.json", "generation_config.json", "tokenizer.json",
          "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "*.tiktoken", "vocab.json",
          "merges.txt", "chat_template.jinja", "chat_template.json", "preprocessor_config.json",
          "processor_config.json")
CHUNK = 64 * 1024 * 1024  # multipart part size
TIMEOUT_S = 60


@dataclass(frozen=True)
class HubFile:
    name: str
    size: int


class _DropAuthOnOtherHost(urllib.request.HTTPRedirectHandler):
    """The Hub redirects downloads to its CDN with a signed URL: the token must not follow to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


def _open(url: str, token: str | None):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    return urllib.request.build_opener(_DropAuthOnOtherHost).open(request, timeout=TIMEOUT_S)


def wanted(name: str) -> bool:
    return "/" not in name and any(fnmatch.fnmatch(name, pattern) for pattern in WANTED)


def list_files(model: str, revision: str, token: str | None) -> tuple[str, list[HubFile]]:
    """The revision's commit sha and the files to copy, with sizes (the Hub API's `blobs=true`)."""
    url = f"{HUB}/api/models/{model}/revision/{urllib.parse.quote(revision, safe='')}?blobs=true"
    with _open(url, token) as response:
        info = json.load(response)
    files = [HubFile(s["rfilename"], int(s.get("size") or s.get("lfs", {}).get("size", 0)))
             for s in info.get("siblings", []) if wanted(s["rfilename"])]
    if not any(f.name.endswith(".safetensors") for f in files):
        raise RuntimeError(f"{model}@{revision} has no safetensors weights at its top level; vLLM loads those")
    return info["sha"], files


def _present(s3: Any, bucket: str, key: str) -> int | None:
    try:
        return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except s3.exceptions.ClientError:
        return None


def copy(model: str, revision: str, bucket: str, prefix: str, token: str | None, s3: Any,
         log: Any = print) -> dict[str, Any]:
    """Copy `model` at `revision` to s3://bucket/prefix; returns what it did. Idempotent and resumable."""
    from boto3.s3.transfer import TransferConfig

    prefix = prefix.rstrip("/") + "/"
    marker = prefix.rstrip("/") + ".complete"
    sha, files = list_files(model, revision, token)
    done = _present(s3, bucket, marker)
    copied, skipped = [], []
    for f in files:
        key = prefix + f.name
        if done is not None or _present(s3, bucket, key) == f.size:
            skipped.append(f.name)
            continue
        log(f"copying {f.name} ({f.size / 2**30:.2f} GiB) to s3://{bucket}/{key}")
        with _open(f"{HUB}/{model}/resolve/{sha}/{urllib.parse.quote(f.name)}", token) as body:
            s3.upload_fileobj(body, bucket, key, Config=TransferConfig(multipart_chunksize=CHUNK, max_concurrency=4))
        copied.append(f.name)
    s3.put_object(Bucket=bucket, Key=marker, Body=json.dumps({"model": model, "revision": revision, "sha": sha,
                                                              "files": [f.name for f in files]}).encode())
    return {"sha": sha, "copied": copied, "skipped": skipped}


def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """event: {model, revision, bucket, prefix, token_secret_arn}; the token is read from Secrets Manager."""
    import boto3

    token = None
    if event.get("token_secret_arn"):
        token = boto3.client("secretsmanager").get_secret_value(SecretId=event["token_secret_arn"])["SecretString"]
    return copy(event["model"], event.get("revision", "main"), event["bucket"], event["prefix"], token,
                boto3.client("s3"))
