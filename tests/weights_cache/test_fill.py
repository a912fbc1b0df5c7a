"""The fill Job's code (weights_cache/fill.py) against a real S3 API (moto's server on 127.0.0.1), run as the Job
runs it (a process, `python fill.py ...`), with a local directory as the Hub: it uploads every file under the prefix,
writes the marker last, and after a SIGKILL midway a second run uploads only what is missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from weights_cache.fill import MARKER

from .conftest import objects

REPO = Path(__file__).resolve().parents[2]
FILL = REPO / "weights_cache" / "fill.py"
SHARDS = 40  # enough files that a kill lands midway


@pytest.fixture()
def source(tmp_path) -> Path:
    """A model-shaped directory: a config, a tokenizer in a subfolder, and SHARDS weight shards of distinct sizes."""
    root = tmp_path / "hub"
    (root / "tokenizer").mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (root / "tokenizer" / "tokenizer.json").write_text("{}")
    (root / "original").mkdir()
    (root / "original" / "consolidated.00.pth").write_bytes(b"a second copy the streamer does not read")
    (root / "pytorch_model.bin").write_bytes(b"the same, pickled")
    for i in range(SHARDS):
        (root / f"model-{i:05d}-of-{SHARDS:05d}.safetensors").write_bytes(os.urandom(64 * 1024 + i))
    return root


def run_fill(s3_server, source: Path, prefix: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(FILL), "--source-dir", str(source), "--bucket", s3_server["bucket"],
                             "--prefix", prefix], env={**os.environ, **s3_server["env"]}, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def summary(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def expected(source: Path, prefix: str) -> dict[str, int]:
    """Every file but the copies in formats the streamer does not read (original/*.pth, *.bin)."""
    return {f"{prefix}/{p.relative_to(source).as_posix()}": p.stat().st_size for p in source.rglob("*")
            if p.is_file() and p.suffix not in (".pth", ".bin")}


def test_fill_uploads_every_file_then_the_marker_and_a_rerun_uploads_nothing(s3_server, source):
    prefix = "models/org/tiny/abc123"
    first = summary(run_fill(s3_server, source, prefix))
    want = expected(source, prefix)
    have = objects(s3_server["client"], s3_server["bucket"], prefix)
    assert first == {"event": "complete", "uploaded": len(want), "skipped": 0}
    assert {k: v for k, v in have.items() if not k.endswith(MARKER)} == want
    marker = json.loads(s3_server["client"].get_object(Bucket=s3_server["bucket"], Key=f"{prefix}/{MARKER}")["Body"].read())
    assert marker["total_bytes"] == sum(want.values())
    again = summary(run_fill(s3_server, source, prefix))
    assert again == {"event": "complete", "uploaded": 0, "skipped": len(want)}


def test_fill_killed_midway_resumes_with_only_the_missing_files(s3_server, source):
    prefix = "models/org/tiny/def456"
    client, bucket = s3_server["client"], s3_server["bucket"]
    proc = run_fill(s3_server, source, prefix, start_new_session=True)
    deadline = time.monotonic() + 60
    while not objects(client, bucket, prefix):  # the first object is there: stop it, then kill it
        assert proc.poll() is None and time.monotonic() < deadline, "the fill ended before it could be killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGSTOP)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = objects(client, bucket, prefix)
    want = expected(source, prefix)
    assert 0 < len(before) < len(want) and f"{prefix}/{MARKER}" not in before  # killed midway, no marker
    # One object left truncated, as a copy from another tool might: a size mismatch is uploaded again.
    stale = sorted(before)[0]
    client.put_object(Bucket=bucket, Key=stale, Body=b"x")
    second = summary(run_fill(s3_server, source, prefix))
    assert second == {"event": "complete", "uploaded": len(want) - len(before) + 1, "skipped": len(before) - 1}
    after = objects(client, bucket, prefix)
    assert {k: v for k, v in after.items() if not k.endswith(MARKER)} == want and f"{prefix}/{MARKER}" in after
