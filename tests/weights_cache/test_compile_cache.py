"""The Neuron compile cache (serving/compile_cache.py) against a real S3 API (moto's server on 127.0.0.1): the first
worker finds nothing and compiles, saves its compiled model with the marker last; the next worker restores the same
files; a save cut short (no marker) is not restored; without S3 the worker compiles instead of failing."""

from __future__ import annotations

import os

import boto3

from serving import compile_cache

from .conftest import objects


def client(s3_server):
    return boto3.client("s3", endpoint_url=s3_server["url"], region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def compiled(root):
    """A compiled model directory as NxD Inference leaves it: a model NEFF, weights layout, a config."""
    (root / "model").mkdir(parents=True)
    (root / "model.pt").write_bytes(os.urandom(50_000))
    (root / "model" / "graph.neff").write_bytes(os.urandom(20_000))
    (root / "neuron_config.json").write_text('{"tp_degree": 2}')
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_first_worker_saves_and_the_next_one_restores(s3_server, tmp_path):
    url = f"s3://{s3_server['bucket']}/neuron-compiled/sdk/llama-tp2-len4096-bs10"
    s3 = client(s3_server)
    assert compile_cache.restore(url, tmp_path / "first", s3) is False  # nothing yet: compile
    files = compiled(tmp_path / "first")
    assert compile_cache.save(url, tmp_path / "first", s3) == len(files)
    keys = objects(s3_server["client"], s3_server["bucket"], "neuron-compiled/sdk/llama-tp2-len4096-bs10/")
    assert len(keys) == len(files) + 1 and any(k.endswith(compile_cache.MARKER) for k in keys)
    assert compile_cache.restore(url, tmp_path / "second", s3) is True
    second = {p.relative_to(tmp_path / "second").as_posix(): p.read_bytes()
              for p in (tmp_path / "second").rglob("*") if p.is_file()}
    assert second == files
    assert compile_cache.save(url, tmp_path / "first", s3) == 0  # already there: nothing sent again


def test_a_save_cut_short_is_not_restored(s3_server, tmp_path):
    url = f"s3://{s3_server['bucket']}/neuron-compiled/sdk/cut-short"
    s3 = client(s3_server)
    s3.put_object(Bucket=s3_server["bucket"], Key="neuron-compiled/sdk/cut-short/model.pt", Body=b"half")
    assert compile_cache.restore(url, tmp_path / "w", s3) is False
    assert not (tmp_path / "w").exists()


def test_without_s3_the_worker_compiles_instead_of_failing(tmp_path):
    dead = boto3.client("s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=boto3.session.Config(retries={"max_attempts": 1}, connect_timeout=1))
    assert compile_cache.restore("s3://b/p", tmp_path, dead) is False
    assert compile_cache.save("s3://b/p", tmp_path, dead) == 0
