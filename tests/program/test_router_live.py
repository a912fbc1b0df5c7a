"""The endpoint's whole request path, live on loopback: nginx with the rendered config -> vllm-router 0.1.17 in
multi-model mode -> one vllm-router per model in regular mode -> the models' servers.

The servers are the Ray Serve app's own OpenAI layer (serving/openai_api.py over a fake engine, the chat tests'
stand-in): what a Neuron model answers behind its router. The endpoint learns the model routers the way discovery
adds them in the cluster (the router's add-worker path, which asks each one's /v1/models); only the Kubernetes watch
is left out. Needs .engines/router (`make router-venv`) and nginx (`apt-get install nginx-light`); skips without them,
except in CI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.bench.conftest import missing
from tests.live_server import free_port, stop_group

from components import router as r
from plan.routing import ENDPOINT_PORT, RouterPlan, Route
from tests.chat_ui.openai_standin import REPLY_PREFIX, running_standin

REPO = Path(__file__).resolve().parents[2]
ROUTER = REPO / ".engines" / "router" / "bin" / "vllm-router"
MODELS = ("Qwen/Qwen3-1.7B", "meta-llama/Llama-3.2-1B")




def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (loopback)
        return resp.status, resp.headers.get("content-type", ""), resp.read().decode()


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (loopback)
        return json.loads(resp.read())


@contextmanager
def _process(command: list[str], log: Path):
    with log.open("w") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop_group(proc, timeout_s=20)


def _wait(url: str, proc, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited:\n{log.read_text()[-3000:]}")
        try:
            _get(url)
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"not ready: {url}\n{log.read_text()[-3000:]}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    if not ROUTER.exists():
        missing(f"no router at {ROUTER.parent.parent}: run `make router-venv`")
    if shutil.which("nginx") is None:
        missing("nginx is not installed (apt-get install nginx-light)")
    tmp = tmp_path_factory.mktemp("endpoint")
    plan = RouterPlan(routes=tuple(Route(name=f"m{i}", model=m, namespace=f"m{i}", server="rayserve",
                                         policy="round_robin") for i, m in enumerate(MODELS)),
                      openai_base_url="")
    with ExitStack() as stack:
        standins = [stack.enter_context(running_standin((m,))) for m in MODELS]
        routers = []
        for i, standin in enumerate(standins):  # a model router: regular mode, as route-<model> runs it
            port, metrics = free_port(), free_port()
            log = tmp / f"route-{i}.log"
            proc = stack.enter_context(_process(
                [str(ROUTER), "--host", "127.0.0.1", "--port", str(port), "--policy", plan.routes[i].policy,
                 "--worker-urls", standin.base_url.removesuffix("/v1"), "--prometheus-host", "127.0.0.1",
                 "--prometheus-port", str(metrics), "--log-level", "warning"], log))
            _wait(f"http://127.0.0.1:{port}/readiness", proc, log)
            routers.append(f"http://127.0.0.1:{port}")
        igw_port, igw_metrics = free_port(), free_port()
        argv = r.endpoint_router_args()
        argv = [a for a in argv if a not in ("--service-discovery",)]  # workers added below, as discovery adds them
        cut = argv.index("--selector")
        argv = argv[:cut] + argv[cut + 1:][argv[cut + 1:].index("--service-discovery-port") + 2:]
        argv[argv.index("--port") + 1] = str(igw_port)
        argv[argv.index("--prometheus-port") + 1] = str(igw_metrics)
        log = tmp / "endpoint-router.log"
        proc = stack.enter_context(_process([str(ROUTER), *argv], log))
        _wait(f"http://127.0.0.1:{igw_port}/health", proc, log)
        for url in routers:
            added = _post(f"http://127.0.0.1:{igw_port}/workers", {"url": url})
            assert added["success"], added
        nginx_port = free_port()
        conf = r.nginx_conf(plan).replace(f"listen {ENDPOINT_PORT};", f"listen 127.0.0.1:{nginx_port};")
        conf = conf.replace(f"127.0.0.1:{r.IGW_PORT};", f"127.0.0.1:{igw_port};")
        (tmp / "nginx.conf").write_text(conf)
        log = tmp / "nginx.log"
        proc = stack.enter_context(_process(["nginx", "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"], log))
        _wait(f"http://127.0.0.1:{nginx_port}/healthz", proc, log)
        yield {"url": f"http://127.0.0.1:{nginx_port}/v1", "standins": standins}


def test_models_lists_every_model_in_openais_shape(endpoint):
    status, content_type, body = _get(f"{endpoint['url']}/models")
    assert status == 200 and content_type.startswith("application/json")
    data = json.loads(body)
    assert data["object"] == "list" and [m["id"] for m in data["data"]] == list(MODELS)


def test_a_request_reaches_the_model_it_names_streamed_through_every_hop(endpoint):
    from openai import OpenAI

    client = OpenAI(base_url=endpoint["url"], api_key="EMPTY")
    for i, model in enumerate(MODELS):
        before = [len(s.requests) for s in endpoint["standins"]]
        stream = client.chat.completions.create(model=model, stream=True,
                                                messages=[{"role": "user", "content": f"hello {i}"}])
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == f"{REPLY_PREFIX}hello {i}"
        after = [len(s.requests) for s in endpoint["standins"]]
        grew = [a - b for a, b in zip(after, before)]
        assert grew[i] >= 1 and grew[1 - i] == 0, grew  # the named model's server, not the other
        done = client.completions.create(model=model, prompt=f"plain {i}", max_tokens=4)
        assert done.model == model
