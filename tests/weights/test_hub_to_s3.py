"""The Hub-to-S3 copy against real HTTP and a real S3 API: a stand-in Hub on 127.0.0.1 (the API's revision listing
and /resolve/ redirecting to a CDN on another loopback address, as huggingface.co does) and moto's S3 and Secrets
Manager in server mode. It copies only what vLLM loads, keeps the token off the CDN, skips what is there and resumes
after a failure midway."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator

import boto3
import pytest

from moto import server as moto_server

from weights import hub_to_s3

MODEL, SHA, TOKEN = "org/tiny", "a" * 40, "hf_secret_token"
FILES = {  # what a Hub repo holds; only some of it is for vLLM
    "model-00001-of-00002.safetensors": b"x" * 300_000,
    "model-00002-of-00002.safetensors": b"y" * 200_000,
    "model.safetensors.index.json": b'{"weight_map": {}}',
    "config.json": b'{"model_type": "llama"}',
    "tokenizer.json": b"{}",
    "pytorch_model.bin": b"pickle" * 1000,
    "README.md": b"# tiny",
    "original/consolidated.00.pth": b"pth",
}
COPIED = sorted(n for n in FILES if n not in ("pytorch_model.bin", "README.md", "original/consolidated.00.pth"))


class Hub:
    """What the stand-in Hub and CDN saw, and what they are told to do."""

    def __init__(self) -> None:
        self.downloads: list[str] = []
        self.auth: dict[str, str | None] = {}
        self.fail_after: int | None = None


@pytest.fixture
def hub() -> Iterator[tuple[Hub, str]]:
    state = Hub()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):  # noqa: ANN002
            pass

        def do_GET(self):  # noqa: N802
            host = self.headers["Host"]
            path = urllib.parse.urlsplit(self.path).path
            state.auth[f"{host.split(':')[0]} {path}"] = self.headers.get("Authorization")
            if path == f"/api/models/{MODEL}/revision/main":
                body = json.dumps({"sha": SHA, "siblings": [{"rfilename": n, "size": len(b)} for n, b in FILES.items()]})
                return self._send(200, body.encode())
            if path.startswith(f"/{MODEL}/resolve/{SHA}/"):  # the Hub redirects to its CDN, on another host
                name = path.rsplit("/", 1)[1]
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.2:{self.server.server_address[1]}/cdn/{name}?sig=1")
                self.end_headers()
                return None
            if path.startswith("/cdn/"):
                if state.fail_after is not None and len(state.downloads) >= state.fail_after:
                    return self._send(500, b"CDN failure")
                name = path.rsplit("/", 1)[1]
                state.downloads.append(name)
                return self._send(200, FILES[name])
            return self._send(404, b"not found")

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)  # 127.0.0.1 (Hub) and 127.0.0.2 (CDN)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def aws(monkeypatch) -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_address[1]}"
    # moto keeps its accounts in this process across servers: start each test from empty ones.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(k, v)
    boto3.client("s3").create_bucket(Bucket="weights")
    yield endpoint
    server.stop()


def _objects() -> dict[str, bytes]:
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="weights").get("Contents", [])]
    return {k: s3.get_object(Bucket="weights", Key=k)["Body"].read() for k in keys}


def test_only_what_vllm_loads_is_copied_byte_for_byte_and_marked_complete(hub, aws, monkeypatch):
    state, url = hub
    monkeypatch.setattr(hub_to_s3, "HUB", url)
    out = hub_to_s3.copy(MODEL, "main", "weights", "models/org/tiny/main", TOKEN, boto3.client("s3"), log=lambda m: None)
    objects = _objects()
    prefix = "models/org/tiny/main/"
    assert sorted(k[len(prefix):] for k in objects if k.startswith(prefix)) == COPIED
    assert all(objects[prefix + n] == FILES[n] for n in COPIED)
    assert json.loads(objects["models/org/tiny/main.complete"])["sha"] == SHA
    assert out["sha"] == SHA and sorted(out["copied"]) == COPIED
    # The token reaches the Hub and never the CDN's signed URLs.
    assert state.auth[f"127.0.0.1 /api/models/{MODEL}/revision/main"] == f"Bearer {TOKEN}"
    assert all(v is None for k, v in state.auth.items() if k.startswith("127.0.0.2 "))
    assert any(v == f"Bearer {TOKEN}" for k, v in state.auth.items() if "/resolve/" in k)


def test_a_copy_cut_off_midway_resumes_with_only_the_rest(hub, aws, monkeypatch):
    state, url = hub
    monkeypatch.setattr(hub_to_s3, "HUB", url)
    s3 = boto3.client("s3")
    state.fail_after = 2  # the CDN fails on the third file, like a Lambda stopped at 15 minutes
    with pytest.raises(Exception):
        hub_to_s3.copy(MODEL, "main", "weights", "models/org/tiny/main", TOKEN, s3, log=lambda m: None)
    first = list(state.downloads)
    assert len(first) == 2 and "models/org/tiny/main.complete" not in _objects()
    state.fail_after = None
    out = hub_to_s3.copy(MODEL, "main", "weights", "models/org/tiny/main", TOKEN, s3, log=lambda m: None)
    assert sorted(out["skipped"]) == sorted(first)
    assert sorted(state.downloads) == COPIED  # every file downloaded exactly once over both runs
    again = hub_to_s3.copy(MODEL, "main", "weights", "models/org/tiny/main", TOKEN, s3, log=lambda m: None)
    assert again["copied"] == [] and len(state.downloads) == len(COPIED)  # complete: nothing fetched again


def test_the_lambda_reads_the_token_from_secrets_manager(hub, aws, monkeypatch):
    state, url = hub
    monkeypatch.setattr(hub_to_s3, "HUB", url)
    arn = boto3.client("secretsmanager").create_secret(Name="hf", SecretString=TOKEN)["ARN"]
    out = hub_to_s3.lambda_handler({"model": MODEL, "revision": "main", "bucket": "weights",
                                    "prefix": "models/org/tiny/main/", "token_secret_arn": arn})
    assert sorted(out["copied"]) == COPIED
    assert state.auth[f"127.0.0.1 /api/models/{MODEL}/revision/main"] == f"Bearer {TOKEN}"


def test_a_repo_without_safetensors_is_refused(hub, monkeypatch):
    state, url = hub
    monkeypatch.setattr(hub_to_s3, "HUB", url)
    monkeypatch.setitem(FILES, "model-00001-of-00002.safetensors", b"")
    monkeypatch.setattr(hub_to_s3, "wanted", lambda n: n.endswith(".json"))
    with pytest.raises(RuntimeError, match="no safetensors weights"):
        hub_to_s3.list_files(MODEL, "main", TOKEN)


def test_the_file_selection():
    assert [n for n in FILES if hub_to_s3.wanted(n)] == [n for n in FILES if n in COPIED]
