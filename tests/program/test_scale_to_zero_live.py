"""A sleeping model's router, live on loopback: the real vllm-router 0.1.17 with the arguments route-<model> runs
with in stack qwen-g6-scale0, its one worker a stand-in for the KEDA interceptor that routes every request by the
stack's InterceptorRoutes (their paths, with the interceptor's longest-prefix rule from tests/program/
test_scale_to_zero.py; the host is localhost here, the cluster's name does not resolve on this machine).

What it shows with the real binary: the router starts and is ready while the model sleeps, its health checks and
/v1/models (what the endpoint asks a router it discovers) only ever reach the probe route, so they would never wake
the model; a completion reaches the serving route once, which wakes it, and is answered. The interceptor itself
(Go, its images not pullable here) is not run. Needs .engines/router (`make router-venv`); skips without it, except
in CI.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from components import router as r
from components import scale_to_zero as s0
from plan.routing import plan_router
from preview import render
from tests.chat_ui.openai_standin import REPLY_PREFIX, running_standin
from tests.program.conftest import recorded
from tests.bench.conftest import missing
from tests.live_server import free_port
from tests.program.test_router_live import ROUTER, _get, _post, _process, _wait
from tests.program.test_scale_to_zero import STACK, _route


@contextmanager
def _interceptor(routes: list[dict], model, backend: str):
    """Routes as the interceptor does; the serving route wakes the model (then proxies to `backend`), the probe
    route answers its placeholder while the model sleeps. Records (route, path) of every request."""
    state = {"awake": False, "seen": []}
    probe = next(x for x in routes if x["metadata"]["name"].endswith("-probe"))
    placeholder = probe["spec"]["coldStart"]["placeholder"]["response"]

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            route = _route(routes, f"http://{self.headers['Host']}{self.path}")
            state["seen"].append((route, urlsplit(self.path).path))
            if route is None:
                return self._answer(404, b"")
            if route == model.name:
                state["awake"] = True  # KEDA would scale 0 -> 1 here; the request is held until a replica is ready
            elif not state["awake"]:
                return self._answer(placeholder["statusCode"], placeholder["body"].encode())
            if self.path == "/health":
                return self._answer(200, b"")
            req = urllib.request.Request(backend + self.path, data=body or None, method=self.command,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback)
                self._answer(resp.status, resp.read())

        do_GET = do_POST = _handle

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], state
    finally:
        server.shutdown()


def test_a_sleeping_models_router_is_ready_checks_health_without_waking_it_and_a_request_wakes_it(tmp_path):
    if not ROUTER.exists():
        missing(f"no router at {ROUTER.parent.parent}: run `make router-venv`")
    config, (model,), run = recorded(STACK)
    routes = [m for m in render.manifests(run) if m["kind"] == "InterceptorRoute"]
    host = s0.wake_host(model)
    for x in routes:  # localhost for the cluster's name
        for rule in x["spec"]["rules"]:
            assert rule["hosts"] == [host]
            rule["hosts"] = ["localhost"]
    (route,) = plan_router([model]).routes
    with running_standin((model.spec.model,)) as standin, \
            _interceptor(routes, model, standin.base_url.removesuffix("/v1")) as (port, state):
        argv = r.model_router_args(route, model)
        assert argv[argv.index("--worker-urls") + 1] == s0.worker_url(model)
        router_port, metrics = free_port(), free_port()
        argv[argv.index("--worker-urls") + 1] = f"http://localhost:{port}"
        argv[argv.index("--port") + 1] = str(router_port)
        argv[argv.index("--prometheus-port") + 1] = str(metrics)
        argv[argv.index("--host") + 1] = "127.0.0.1"
        # health checks every second instead of every 60 s, so a few seconds hold several
        argv += ["--health-check-interval-secs", "1", "--health-success-threshold", "1"]
        log = tmp_path / "router.log"
        with _process([str(ROUTER), *argv], log) as proc:
            url = f"http://127.0.0.1:{router_port}"
            _wait(f"{url}/readiness", proc, log)  # ready with no replica
            time.sleep(4)
            status, _, body = _get(f"{url}/v1/models")  # the endpoint's lookup of the model id
            assert status == 200 and json.loads(body)["data"][0]["id"] == model.spec.model
            asleep = list(state["seen"])
            assert not state["awake"], asleep
            assert len([p for rt, p in asleep if p == "/health"]) >= 3, asleep  # start and periodic checks
            assert {rt for rt, _ in asleep} == {f"{model.name}-probe"}, asleep
            done = _post(f"{url}/v1/completions", {"model": model.spec.model, "prompt": "wake", "max_tokens": 4})
            assert done["choices"][0]["text"] == f"{REPLY_PREFIX}wake"
            woke = state["seen"][len(asleep):]
            assert (model.name, "/v1/completions") in woke and state["awake"], woke
            assert len(standin.requests) == 1
