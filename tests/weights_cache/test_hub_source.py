"""The fill's Hub source over real HTTP: a stand-in Hub on 127.0.0.1 (the API's revision listing, and /resolve/
redirecting to a CDN on another loopback address, as huggingface.co does) into moto's S3; the SageMaker Lambda's entry
point with the token from moto's Secrets Manager. The token reaches the Hub and never the CDN's signed URLs, every
file comes from the listed commit, skipped formats are not fetched, and a copy cut off midway resumes."""

from __future__ import annotations

import ast
import http.server
import json
import sys
import threading
import urllib.error
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from weights_cache import fill as fill_module
from weights_cache.fill import MARKER, HubSource, fill, lambda_handler

from .conftest import objects

MODEL, SHA, TOKEN = "org/tiny", "a" * 40, "hf_secret_token"
FILES = {
    "model-00001-of-00002.safetensors": b"x" * 300_000,
    "model-00002-of-00002.safetensors": b"y" * 200_000,
    "model.safetensors.index.json": b'{"weight_map": {}}',
    "config.json": b'{"model_type": "llama"}',
    "tokenizer.json": b"{}",
    "pytorch_model.bin": b"pickle" * 1000,  # SKIPPED: the streamer reads safetensors
    "original/consolidated.00.pth": b"pth",
}
COPIED = sorted(n for n in FILES if not n.endswith((".bin", ".pth")))


class Hub:
    def __init__(self) -> None:
        self.downloads: list[str] = []
        self.auth: dict[str, str | None] = {}
        self.fail_after: int | None = None


@pytest.fixture
def hub(monkeypatch) -> Iterator[Hub]:
    state = Hub()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):  # noqa: ANN002
            pass

        def do_GET(self):  # noqa: N802
            host = self.headers["Host"].split(":")[0]
            path = urllib.parse.urlsplit(self.path).path
            state.auth[f"{host} {path}"] = self.headers.get("Authorization")
            if path == f"/api/models/{MODEL}/revision/main":
                body = json.dumps({"sha": SHA, "siblings": [{"rfilename": n, "size": len(b)} for n, b in FILES.items()]})
                return self._send(200, body.encode())
            if path.startswith(f"/{MODEL}/resolve/{SHA}/"):  # the Hub redirects to its CDN, on another host
                name = urllib.parse.unquote(path.split(f"/resolve/{SHA}/", 1)[1])
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.2:{self.server.server_address[1]}/cdn/{name}?sig=1")
                self.end_headers()
                return None
            if path.startswith("/cdn/"):
                if state.fail_after is not None and len(state.downloads) >= state.fail_after:
                    return self._send(500, b"CDN failure")
                name = path[len("/cdn/"):]
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
    monkeypatch.setattr(HubSource, "endpoint", f"http://127.0.0.1:{server.server_address[1]}")
    yield state
    server.shutdown()


def test_the_hub_source_copies_what_the_streamer_reads_and_keeps_the_token_off_the_cdn(hub, s3_server):
    prefix = "models/org/tiny/hub-a"
    out = fill(HubSource(MODEL, "main", TOKEN), s3_server["client"], s3_server["bucket"], prefix)
    have = objects(s3_server["client"], s3_server["bucket"], prefix)
    assert sorted(k[len(prefix) + 1:] for k in have if not k.endswith(MARKER)) == COPIED
    assert out == {"uploaded": len(COPIED), "skipped": 0}
    assert sorted(hub.downloads) == COPIED  # skipped formats are never downloaded
    assert hub.auth[f"127.0.0.1 /api/models/{MODEL}/revision/main"] == f"Bearer {TOKEN}"
    assert all(v == f"Bearer {TOKEN}" for k, v in hub.auth.items() if "/resolve/" in k)
    assert all(v is None for k, v in hub.auth.items() if k.startswith("127.0.0.2 "))


def test_a_copy_cut_off_midway_resumes_with_only_the_rest(hub, s3_server):
    prefix = "models/org/tiny/hub-b"
    hub.fail_after = 2  # the CDN fails on the third file, like a Lambda stopped at 15 minutes
    with pytest.raises(urllib.error.HTTPError, match="500"):
        fill(HubSource(MODEL, "main", TOKEN), s3_server["client"], s3_server["bucket"], prefix)
    first = list(hub.downloads)
    assert len(first) == 2 and f"{prefix}/{MARKER}" not in objects(s3_server["client"], s3_server["bucket"], prefix)
    hub.fail_after = None
    out = fill(HubSource(MODEL, "main", TOKEN), s3_server["client"], s3_server["bucket"], prefix)
    assert out == {"uploaded": len(COPIED) - 2, "skipped": 2}
    assert sorted(hub.downloads) == COPIED  # every file downloaded once over both runs


def test_the_lambda_reads_the_token_from_secrets_manager(hub, s3_server, monkeypatch):
    for k, v in s3_server["env"].items():
        monkeypatch.setenv(k, v)
    arn = boto3.client("secretsmanager").create_secret(Name="hf-lambda-test", SecretString=TOKEN)["ARN"]
    out = lambda_handler({"model": MODEL, "revision": "main", "bucket": s3_server["bucket"],
                          "prefix": "models/org/tiny/hub-c", "token_secret_arn": arn})
    assert out == {"uploaded": len(COPIED), "skipped": 0}
    assert hub.auth[f"127.0.0.1 /api/models/{MODEL}/revision/main"] == f"Bearer {TOKEN}"


def test_the_fill_needs_only_the_standard_library_and_boto3():
    """The Lambda runtime has boto3 and the standard library; the fill Job's image installs only boto3."""
    tree = ast.parse(Path(fill_module.__file__).read_text(encoding="utf-8"))
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert modules - set(sys.stdlib_module_names) == {"boto3"}
