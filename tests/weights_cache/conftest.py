"""A local S3 for the weights cache's tests: moto's server mode on 127.0.0.1 (a real HTTP S3 API, in this process),
one per session, with the AWS variables that point boto3 and the Run:ai streamer at it."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.live_server import free_port

BUCKET = "weights"



@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict]:
    """{'url': endpoint, 'env': AWS_* variables for child processes, 'client': a boto3 S3 client}; bucket BUCKET exists."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": url, "AWS_EC2_METADATA_DISABLED": "true",
           # The streamer's S3 client addresses buckets by path (127.0.0.1/weights/...), not weights.127.0.0.1.
           "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING": "0"}
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield {"url": url, "env": env, "client": client, "bucket": BUCKET}
    finally:
        server.stop()


def objects(client, bucket: str, prefix: str) -> dict[str, int]:
    """Key -> size under a prefix."""
    out: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return out
