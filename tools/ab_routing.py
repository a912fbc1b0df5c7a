"""Round robin against cache-aware routing, for real, on this machine: `make ab-routing`.

Three replicas of the real vLLM CPU engine (.engines/vllm-<version>, prefix caching on) serve a tiny random-weight
Llama written offline by tools/tiny_model.py; the deployed router (vllm-router from PyPI, .engines/router: the wheel
components/router.py installs, in the same regular mode, with the policy flags plan/routing.py gives a model's router:
cache_aware's load bound from the A/B's own concurrency per replica, ceil(parallel chats / replicas), as the plan
derives it from sizing's) sits in front. The same prefix-heavy workload runs once per policy: multi-turn chats that
share long system prompts (--system-prompts of them, the chats spread over them), each turn resending the whole
conversation, a few chats at a time. Every engine first serves a chat of the same shape straight (the CPU build's
first requests at new lengths are slow, which must not fall on the policy that runs first); between policies every
engine's prefix cache is reset (vLLM's /reset_prefix_cache, VLLM_SERVER_DEV_MODE=1) and a fresh router starts, so
both start cold.

Measured per policy: the prefix-cache hit rate summed over the three engines' /metrics (vllm:prefix_cache_hits_total
over vllm:prefix_cache_queries_total, deltas over the run), TTFT p50/p90 at the client (first streamed token, through
the router), requests per replica (the router's vllm_router_processed_requests_total). Writes
build/ab-routing/results.json, router-metrics.txt (one router's /metrics after its run) and ab-routing.png.

Everything listens on 127.0.0.1; engines run one after another's startup, with a small KV cache
(VLLM_CPU_KVCACHE_SPACE=1 GiB) and a short context, and the run is bounded by --deadline-s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
ENGINES = REPO / ".engines"
ROUTER_VENV = ENGINES / "router"
MODEL_ID = "tiny-llama"  # --served-model-name: what the requests name
POLICIES = ("round_robin", "cache_aware")
# What the plan adds to a cache_aware model's `vllm serve` (plan/models.py): vllm-router's cache_aware reads the
# prompt's tokens from the replica's /v1/chat/completions/render, which vLLM 0.32 serves only with --enable-scale-out
# (403 otherwise, and the router falls back without prefix matching: outcome "missing_tokens" in its metrics).
ROUTED_SERVER_FLAGS = ("--enable-scale-out",)
HIT_METRIC = "vllm:prefix_cache_hits_total"
QUERY_METRIC = "vllm:prefix_cache_queries_total"
WORDS = ("capital", "France", "Paris", "model", "tiny", "cores", "help", "story", "count", "assistant", "brief",
         "today", "hello", "question", "answer", "system", "user", "ten", "nine", "eight")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (loopback)
        return r.read().decode()


def post(url: str, timeout: float = 30.0) -> int:
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 (loopback)
        return r.status


@contextmanager
def process(command: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Run `command` in its own process group, logging to `log`; stop that group (and only it) on exit."""
    with log.open("w") as sink:
        proc = subprocess.Popen(command, cwd=REPO, env={**os.environ, **(env or {})}, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            get(url, timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"not ready after {timeout_s:.0f} s: {url}\n{log.read_text()[-4000:]}") from None
            time.sleep(1)


def counter(metrics_text: str, name: str) -> float:
    """The sum of one counter's samples in a Prometheus text exposition."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def per_worker(metrics_text: str, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        match = re.match(rf'{re.escape(name)}\{{.*?worker="([^"]+)".*?\}} (\S+)$', line)
        if match:
            out[match.group(1)] = out.get(match.group(1), 0.0) + float(match.group(2))
    return out


def conversations(n: int, turns: int, system_words: int, seed: int,
                  prompts: int = 1) -> tuple[list[str], list[list[str]]]:
    """`prompts` system prompts and n chats of `turns` user messages, chat c under prompt c % prompts
    (deterministic for a seed)."""
    rng = random.Random(seed)
    systems = [f"You are helpful assistant number {k}. " + " ".join(rng.choice(WORDS) for _ in range(system_words))
               for k in range(prompts)]
    chats = [[f"Chat {c} turn {t}: " + " ".join(rng.choice(WORDS) for _ in range(12)) for t in range(turns)]
             for c in range(n)]
    return systems, chats


def deployed_policy_args(policy: str, concurrency_per_replica: int) -> list[str]:
    """The policy flags a model's router runs with (plan/routing.py), read in the project's virtualenv: the router's
    virtualenv, which runs this tool, has not the plan's dependencies."""
    code = ("import json, sys; from plan.routing import policy_args; "
            "print(json.dumps(policy_args(sys.argv[1], int(sys.argv[2]))))")
    out = subprocess.run([str(REPO / "venv" / "bin" / "python"), "-c", code, policy, str(concurrency_per_replica)],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    if out.returncode:
        raise SystemExit(f"plan/routing.py's policy_args failed (run `make venv`):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


async def run_workload(base_url: str, systems: list[str], chats: list[list[str]], parallel: int, max_tokens: int,
                       deadline: float) -> list[dict]:
    """Every chat, turn by turn (each turn resends the conversation so far), `parallel` chats at a time."""
    import aiohttp

    results: list[dict] = []
    gate = asyncio.Semaphore(parallel)
    timeout = aiohttp.ClientTimeout(total=300)

    async def chat(session, c: int, turns: list[str]) -> None:
        async with gate:
            messages = [{"role": "system", "content": systems[c % len(systems)]}]
            for t, text in enumerate(turns):
                if time.monotonic() > deadline:
                    return
                messages.append({"role": "user", "content": text})
                body = {"model": MODEL_ID, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
                        "stream": True, "ignore_eos": True}
                start = time.perf_counter()
                ttft, reply = None, []
                async with session.post(f"{base_url}/v1/chat/completions", json=body) as resp:
                    if resp.status != 200:
                        raise SystemExit(f"HTTP {resp.status}: {(await resp.text())[:500]}")
                    async for raw in resp.content:
                        line = raw.decode().strip()
                        if not line.startswith("data: ") or line == "data: [DONE]":
                            continue
                        delta = json.loads(line[6:])["choices"][0].get("delta", {}).get("content")
                        if delta:
                            if ttft is None:
                                ttft = time.perf_counter() - start
                            reply.append(delta)
                results.append({"chat": c, "turn": t, "ttft_s": ttft, "e2e_s": time.perf_counter() - start})
                messages.append({"role": "assistant", "content": "".join(reply)})

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(chat(session, c, turns) for c, turns in enumerate(chats)))
    return results


def quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1] if len(values) > 1 else values[0]


def warm_up(engines: list[str], args, seed: int) -> None:
    """Each engine serves a few chats of the workload's shape first, straight (not through a router): the first
    requests at new lengths are slow on the CPU build, and that must not land on whichever policy runs first."""
    systems, chats = conversations(args.replicas, args.turns, args.system_words, seed)
    for url in engines:
        asyncio.run(run_workload(url, systems, chats[:1], 1, args.max_tokens, time.monotonic() + 300))


def measure_policy(policy: str, engines: list[str], args, systems: list[str], chats: list[list[str]],
                   out: Path) -> dict:
    for url in engines:  # both policies start cold
        post(f"{url}/reset_prefix_cache")
    before = [get(f"{url}/metrics") for url in engines]
    port, metrics_port = free_port(), free_port()
    command = [str(ROUTER_VENV / "bin" / "vllm-router"), "--host", "127.0.0.1", "--port", str(port),
               *deployed_policy_args(policy, concurrency_per_replica(args)), "--worker-urls", *engines, "--prometheus-host", "127.0.0.1",
               "--prometheus-port", str(metrics_port), "--log-level", "warning"]
    log = out / f"router-{policy}.log"
    with process(command, log) as proc:
        wait_ready(f"http://127.0.0.1:{port}/readiness", proc, log, 120)
        started = time.monotonic()
        results = asyncio.run(run_workload(f"http://127.0.0.1:{port}", systems, chats, args.parallel,
                                           args.max_tokens,
                                           started + args.deadline_s / len(POLICIES) / args.rounds))
        seconds = time.monotonic() - started
        router_metrics = get(f"http://127.0.0.1:{metrics_port}/metrics")
    (out / f"router-metrics-{policy}.txt").write_text(router_metrics)
    after = [get(f"{url}/metrics") for url in engines]
    hits = sum(counter(a, HIT_METRIC) - counter(b, HIT_METRIC) for a, b in zip(after, before))
    queries = sum(counter(a, QUERY_METRIC) - counter(b, QUERY_METRIC) for a, b in zip(after, before))
    return summary([{"hits": hits, "queries": queries, "seconds": seconds, "results": results,
                     "requests_per_replica": per_worker(router_metrics, "vllm_router_processed_requests_total"),
                     "router_command": command[1:]}])


def summary(measured: list[dict]) -> dict:
    """One policy's numbers over one or more rounds: hits over queries summed, TTFT quantiles over every request."""
    hits, queries = sum(m["hits"] for m in measured), sum(m["queries"] for m in measured)
    results = [r for m in measured for r in m["results"]]
    ttfts = [r["ttft_s"] * 1000 for r in results if r["ttft_s"] is not None]
    later = [r["ttft_s"] * 1000 for r in results if r["ttft_s"] is not None and r["turn"] > 0]
    per_replica: dict[str, float] = {}
    for m in measured:
        for worker, n in m["requests_per_replica"].items():
            per_replica[worker] = per_replica.get(worker, 0.0) + n
    return {
        "prefix_cache_hit_rate": hits / queries if queries else 0.0,
        "prefix_cache_hits": hits, "prefix_cache_queries": queries,
        "ttft_p50_ms": quantile(ttfts, 0.5), "ttft_p90_ms": quantile(ttfts, 0.9),
        "ttft_p50_ms_after_first_turn": quantile(later, 0.5) if later else None,
        "requests": len(results), "seconds": round(sum(m["seconds"] for m in measured), 1),
        "requests_per_replica": per_replica,
        "router_command": measured[0]["router_command"],
        "_measured": measured,
    }


def concurrency_per_replica(args) -> int:
    """The A/B's load per replica as sizing defines a plan's: its requests at once over its replicas, rounded up."""
    return math.ceil(args.parallel / args.replicas)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["policies"])
    data = results["policies"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.bar(names, [data[n]["prefix_cache_hit_rate"] * 100 for n in names], color=["#999999", "#2a7ab0"])
    left.set_ylabel("prefix-cache hit rate (%)")
    left.set_ylim(0, 100)
    for i, n in enumerate(names):
        left.text(i, data[n]["prefix_cache_hit_rate"] * 100 + 2, f"{data[n]['prefix_cache_hit_rate']:.0%}",
                  ha="center")
    width = 0.38
    xs = range(len(names))
    right.bar([x - width / 2 for x in xs], [data[n]["ttft_p50_ms"] for n in names], width, label="p50")
    right.bar([x + width / 2 for x in xs], [data[n]["ttft_p90_ms"] for n in names], width, label="p90")
    right.set_xticks(list(xs), names)
    right.set_ylabel("TTFT (ms, through the router)")
    right.legend()
    s = results["setup"]
    fig.suptitle(f"vllm-router {s['router_version']}, {s['replicas']} x vLLM {s['vllm_version']} (CPU), "
                 f"{s['chats']} chats x {s['turns']} turns, {s['parallel']} at once, "
                 f"{s['system_prompts']} shared system prompt(s)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def engine_dir(version: str | None) -> Path:
    if version:
        return ENGINES / f"vllm-{version}"
    found = sorted((p for p in ENGINES.glob("vllm-*") if (p / ".installed").exists()),
                   key=lambda p: tuple(int(x) for x in p.name.split("-", 1)[1].split(".")))
    if not found:
        raise SystemExit(f"no vLLM engine in {ENGINES} (a vllm-<version> with .installed): run `make engines`")
    return found[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine-version", help="vLLM of .engines/vllm-<version> (default: the newest installed)")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--chats", type=int, default=12)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--system-words", type=int, default=300, help="length of each shared system prompt")
    # Three prompts (three assistants or tenants on one model) and six chats at once, two per replica: affinity then
    # matters per replica, and the plan's load bound (C - 1 = 1) is not the degenerate C = 1 one (0: join-shortest-queue).
    parser.add_argument("--system-prompts", type=int, default=3, help="distinct system prompts the chats share")
    parser.add_argument("--parallel", type=int, default=6, help="chats in flight at once")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--max-model-len", type=int, default=2048)
    # Big enough that a prefill costs more than the server's overhead (what a prefix-cache hit saves), still small:
    # 4 layers of width 512, about 13 M parameters (tools/tiny_model.py's own default, 64 x 2, prefills in ~1 ms).
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="measure both policies this many times, same engines")
    parser.add_argument("--deadline-s", type=float, default=600, help="both policies' workload time, in all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "build" / "ab-routing")
    args = parser.parse_args(argv)

    engine = engine_dir(args.engine_version)
    if not (ROUTER_VENV / "bin" / "vllm-router").exists():
        raise SystemExit(f"no router at {ROUTER_VENV}: run `make router-venv`")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    model = out / f"tiny-llama-h{args.hidden_size}-l{args.layers}"
    if not (model / "config.json").exists():
        subprocess.run([str(engine / "bin" / "python"), str(REPO / "tools" / "tiny_model.py"), str(model),
                        "--hidden-size", str(args.hidden_size), "--layers", str(args.layers)],
                       cwd=REPO, check=True, timeout=600)
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_SERVER_DEV_MODE": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "OMP_NUM_THREADS": "1",
           "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
    systems, chats = conversations(args.chats, args.turns, args.system_words, args.seed, args.system_prompts)
    with ExitStack() as stack:
        engines = []
        for i in range(args.replicas):  # one at a time: engine startup is the memory and CPU peak
            port = free_port()
            command = [str(engine / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server",
                       "--model", str(model), "--served-model-name", MODEL_ID, "--host", "127.0.0.1",
                       "--port", str(port), "--max-model-len", str(args.max_model_len), "--dtype", "bfloat16",
                       "--max-num-seqs", "8", "--seed", "0", "--enable-prefix-caching", *ROUTED_SERVER_FLAGS]
            log = out / f"engine-{i}.log"
            proc = stack.enter_context(process(command, log, env))
            wait_ready(f"http://127.0.0.1:{port}/health", proc, log, 600)
            engines.append(f"http://127.0.0.1:{port}")
        version = json.loads(get(f"{engines[0]}/version"))["version"]
        warm_up(engines, args, args.seed + 1)  # other words than the measured chats; caches are reset after
        rounds = []
        for r in range(args.rounds):  # the order alternates, so that neither policy always runs first
            order = POLICIES if r % 2 == 0 else POLICIES[::-1]
            measured = {p: measure_policy(p, engines, args, systems, chats, out) for p in order}
            rounds.append({p: measured[p] for p in POLICIES})
    policies = {p: summary([m for rnd in rounds for m in rnd[p].pop("_measured")]) for p in POLICIES}
    for p in POLICIES:
        policies[p].pop("_measured")
    router_version = subprocess.run([str(ROUTER_VENV / "bin" / "python"), "-c",
                                     "import importlib.metadata as m; print(m.version('vllm-router'))"],
                                    capture_output=True, text=True, check=True).stdout.strip()
    results = {
        "policies": policies,  # every round's requests together
        "rounds": [{p: {k: v for k, v in rnd[p].items() if k != "router_command"} for p in POLICIES}
                   for rnd in rounds],
        "setup": {"rounds": args.rounds, "vllm_version": version, "router_version": router_version, "replicas": args.replicas,
                  "chats": args.chats, "turns": args.turns, "parallel": args.parallel,
                  "system_prompts": args.system_prompts, "system_prompt_words": args.system_words,
                  "concurrency_per_replica": concurrency_per_replica(args), "max_tokens": args.max_tokens,
                  "max_model_len": args.max_model_len, "kv_cache_space_gib": 1, "seed": args.seed,
                  "model": f"tools/tiny_model.py ({args.layers} layers, hidden {args.hidden_size}, random weights)"},
    }
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out / "ab-routing.png")
    for i, rnd in enumerate(rounds if args.rounds > 1 else []):
        for name, r in rnd.items():
            print(f"round {i + 1} {name:12s} hit rate {r['prefix_cache_hit_rate']:.1%}  "
                  f"TTFT p50 {r['ttft_p50_ms']:.0f} ms  p90 {r['ttft_p90_ms']:.0f} ms  ({r['seconds']} s)")
    for name, r in policies.items():
        print(f"{name:12s} hit rate {r['prefix_cache_hit_rate']:.1%}  TTFT p50 {r['ttft_p50_ms']:.0f} ms  "
              f"p90 {r['ttft_p90_ms']:.0f} ms  ({r['requests']} requests, {r['seconds']} s)")
    print(f"results in {out / 'results.json'}, plot in {out / 'ab-routing.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
