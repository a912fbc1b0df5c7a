"""The pinned upstream files: fetched from a (local) GitHub-like server into the cache, checked by git blob id, and
named in one failure when they cannot be had; ../shared's copies are exactly the pinned blobs."""

from __future__ import annotations

import functools
import http.server
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from tests import upstream
from tests.validation import SHARED, require_shared

SCHEMA = b"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
TEMPLATE = b"image: ${Image}\n"


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A raw.githubusercontent-shaped server on 127.0.0.1 holding one CRD, and a lock pinning it and a derived file."""
    site = tmp_path / "site"
    (site / "org/repo/v1/crds").mkdir(parents=True)
    (site / "org/repo/v1/crds/a.yaml").write_bytes(SCHEMA)
    (site / "org/repo/v1/values.tmpl.yaml").write_bytes(TEMPLATE)
    lock = {"files": {
        "crds/a.yaml": {"repo": "org/repo", "ref": "v1", "path": "crds/a.yaml", "git_blob": upstream.git_blob(SCHEMA)},
        "charts/values.tmpl.yaml": {"repo": "org/repo", "ref": "v1", "path": "values.tmpl.yaml",
                                    "git_blob": upstream.git_blob(TEMPLATE)},
        "charts/values.yaml": {"derived_from": "charts/values.tmpl.yaml", "substitute": {"${Image}": "x:1"},
                               "git_blob": upstream.git_blob(b"image: x:1\n")},
    }}
    lock_path = tmp_path / "upstream.lock.yaml"
    lock_path.write_text(yaml.safe_dump(lock))
    monkeypatch.setattr(upstream, "LOCK", lock_path)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(upstream, "BASE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    yield site
    server.shutdown()


def test_missing_files_are_fetched_into_the_cache_and_checked(served, tmp_path):
    cache = tmp_path / "cache"
    assert upstream.ensure(cache) == cache
    assert (cache / "crds/a.yaml").read_bytes() == SCHEMA
    assert (cache / "charts/values.yaml").read_bytes() == b"image: x:1\n"
    (served / "org/repo/v1/crds/a.yaml").unlink()  # a second run reads the cache, not the network
    upstream.ensure(cache)


def test_a_file_that_is_not_the_pinned_blob_is_refused(served, tmp_path):
    (served / "org/repo/v1/crds/a.yaml").write_bytes(SCHEMA + b"# changed upstream\n")
    with pytest.raises(upstream.UpstreamMissing, match=r"crds/a\.yaml: fetched file has git blob \w+, pinned"):
        upstream.ensure(tmp_path / "cache")


def test_offline_the_failure_names_every_missing_file_and_the_way_out(served, tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on: what "offline" looks like to urllib
        s.bind(("127.0.0.1", 0))
        monkeypatch.setattr(upstream, "BASE_URL", f"http://127.0.0.1:{s.getsockname()[1]}")
    with pytest.raises(upstream.UpstreamMissing) as info:
        upstream.ensure(tmp_path / "cache")
    message = str(info.value)
    assert "3 pinned upstream file(s)" in message
    for rel in ("crds/a.yaml", "charts/values.tmpl.yaml", "charts/values.yaml"):
        assert f"  {rel}: " in message
    assert "shared/ beside the checkout" in message and "python -m tests.upstream" in message


def test_the_lock_pins_exactly_the_files_in_shared_byte_for_byte():
    require_shared()
    on_disk = {str(p.relative_to(SHARED)) for d in ("crds", "charts") for p in (SHARED / d).iterdir()
               if p.name != "README.md"}
    pins = upstream.pinned()
    assert set(pins) == on_disk
    for rel, entry in pins.items():
        blob = subprocess.run(["git", "hash-object", str(SHARED / rel)], capture_output=True, text=True,
                              check=True).stdout.strip()
        assert blob == entry["git_blob"], rel


def test_the_pins_are_at_an_exact_ref():
    for rel, entry in upstream.pinned().items():
        if "derived_from" in entry:
            assert entry["derived_from"] in upstream.pinned(), rel
            continue
        assert entry["ref"] not in ("main", "master", "HEAD"), rel
        assert Path(entry["path"]).name, rel
