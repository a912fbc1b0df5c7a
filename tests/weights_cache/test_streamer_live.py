"""The weights cache with real parts: a tiny model written offline, put into a local S3 (moto's server on 127.0.0.1)
by the fill Job's code, and the GPU image's vLLM (0.32.0, the CPU build from .engines/) loading it from s3:// with
--load-format runai_streamer (runai-model-streamer from PyPI, pinned in requirements-engine-0.32.0.txt), the
arguments the stack's server gets, then answering a completion under the Hub id the router knows it by."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.bench.conftest import ENGINE, VLLM_VERSION, missing
from tests.live_server import stop_group

from .conftest import free_port, objects

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 600  # about 4 min on two loaded cores
SERVED_NAME = "org/tiny-llama"


def test_vllm_streams_the_filled_cache_from_s3_and_answers(s3_server, tmp_path):
    python = ENGINE / "bin" / "python"
    if not python.exists():
        missing(f"no vLLM {VLLM_VERSION} engine at {ENGINE}: run `make engines` (make test does)")
    model = tmp_path / "tiny"
    made = subprocess.run([str(python), str(REPO / "tools" / "tiny_model.py"), str(model)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    prefix = "models/org/tiny-llama/main"
    fill = subprocess.run([sys.executable, str(REPO / "weights_cache" / "fill.py"), "--source-dir", str(model),
                           "--bucket", s3_server["bucket"], "--prefix", prefix],
                          env={**os.environ, **s3_server["env"]}, capture_output=True, text=True, timeout=120)
    assert fill.returncode == 0, fill.stderr[-3000:]
    assert any(k.endswith(".safetensors") for k in objects(s3_server["client"], s3_server["bucket"], prefix))

    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, **s3_server["env"], "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server",
               "--model", f"s3://{s3_server['bucket']}/{prefix}", "--load-format", "runai_streamer",
               "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
               "--max-model-len", "512", "--max-num-seqs", "4", "--dtype", "bfloat16", "--seed", "0"]
    with log.open("w") as sink:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"vLLM exited with {proc.returncode}:\n{log.read_text()[-6000:]}"
            try:
                urllib.request.urlopen(f"{root}/health", timeout=2).read()  # noqa: S310 (local)
                break
            except OSError:
                assert time.monotonic() < deadline, f"not ready in {READY_TIMEOUT_S} s:\n{log.read_text()[-6000:]}"
                time.sleep(3)
        body = json.dumps({"model": SERVED_NAME, "prompt": "The capital of France is", "max_tokens": 8,
                           "temperature": 0}).encode()
        request = urllib.request.Request(f"{root}/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=120).read())  # noqa: S310 (local)
        assert answer["model"] == SERVED_NAME
        assert answer["usage"]["completion_tokens"] > 0 and answer["choices"][0]["text"]
        text = log.read_text()
        assert "runai" in text.lower() or "streamer" in text.lower(), text[-4000:]  # the streamer did load it
    finally:
        stop_group(proc, timeout_s=30)
