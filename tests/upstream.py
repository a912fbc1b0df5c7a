"""The upstream files the tests validate against (CRDs, charts' values.yaml): from ../shared, or fetched and cached.

CI and the developers have the steering repo's shared/ beside the checkout. In any other clone, the files listed in
upstream.lock.yaml are fetched once from GitHub at their pinned ref into a cache, each checked against its git blob
id; offline and without either, the tests that need them fail with the list of what is missing and how to get it.
Nothing is ever skipped for want of these files.

    python -m tests.upstream        # fetch into the cache now (what the tests would do on first use)
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LOCK = Path(__file__).with_name("upstream.lock.yaml")
SHARED_BESIDE = REPO.parent / "shared"
CACHE = Path(os.environ.get("LLM_EKS_UPSTREAM_CACHE", Path.home() / ".cache" / "llm-eks" / "upstream"))
# Where a pinned file is fetched from: {repo}/{ref}/{path} under this base (a test points it at a local server).
BASE_URL = os.environ.get("LLM_EKS_UPSTREAM_BASE_URL", "https://raw.githubusercontent.com")
TIMEOUT_S = 30


class UpstreamMissing(RuntimeError):
    """Some pinned upstream files are neither in ../shared nor in the cache, and could not be fetched."""


def pinned() -> dict[str, dict]:
    return yaml.safe_load(LOCK.read_text(encoding="utf-8"))["files"]


def git_blob(data: bytes) -> str:
    """The id `git hash-object` gives a file: how the provenance READMEs name each copy."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 (git's id, not security)


def root() -> Path:
    """The folder holding crds/ and charts/: ../shared when it is there, else the cache."""
    return SHARED_BESIDE if SHARED_BESIDE.is_dir() else CACHE


def _download(entry: dict) -> bytes:
    url = f"{BASE_URL.rstrip('/')}/{entry['repo']}/{entry['ref']}/{entry['path']}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 (a pinned https address)
            return response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise UpstreamMissing(f"{url}: {getattr(exc, 'reason', exc)}") from None


def _build(rel: str, entry: dict, folder: Path) -> bytes:
    if "derived_from" in entry:  # a values.yaml that upstream's release job renders from a template
        text = _have(entry["derived_from"], folder).decode()
        for placeholder, value in entry["substitute"].items():
            text = text.replace(placeholder, value)
        return text.encode()
    return _download(entry)


def _have(rel: str, folder: Path) -> bytes:
    """The file's bytes from `folder`, fetched there first if absent or not the pinned blob."""
    entry = pinned()[rel]
    path = folder / rel
    if path.is_file() and git_blob(data := path.read_bytes()) == entry["git_blob"]:
        return data
    data = _build(rel, entry, folder)
    if git_blob(data) != entry["git_blob"]:
        raise UpstreamMissing(f"{rel}: fetched file has git blob {git_blob(data)}, pinned {entry['git_blob']}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


_FAILED: dict[Path, str] = {}
"""Per folder, the failure already met in this process: one attempt per test session, not one per test."""


def ensure(folder: Path | None = None) -> Path:
    """Every pinned file present in `folder` (default: root()); fetch what is missing; raise naming what failed."""
    folder = folder or root()
    if folder in _FAILED:
        raise UpstreamMissing(_FAILED[folder])
    if folder == SHARED_BESIDE:
        missing = [rel for rel in pinned() if not (folder / rel).is_file()]
        if missing:
            raise UpstreamMissing(f"../shared lacks {', '.join(missing)} (update the steering repo's shared/)")
        return folder
    failures = []
    for rel in pinned():
        try:
            _have(rel, folder)
        except UpstreamMissing as exc:
            failures.append(f"  {rel}: {exc}")
    if failures:
        _FAILED[folder] = (
            f"{len(failures)} pinned upstream file(s) are not in {folder} and could not be fetched:\n"
            + "\n".join(failures)
            + f"\nPut the steering repo's shared/ beside the checkout ({SHARED_BESIDE}), or run "
              "`venv/bin/python -m tests.upstream` once with network access.")
        raise UpstreamMissing(_FAILED[folder])
    return folder


if __name__ == "__main__":
    try:
        print(f"upstream files ready in {ensure()}")
    except UpstreamMissing as exc:
        sys.exit(str(exc))
