"""Running the generator: locally from .engines/bench, or as the in-cluster Job through kubectl; a progress bar fed
by inference-perf's stage log lines; the plots through the bench virtualenv's matplotlib."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Iterator

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .results import STAGE_EVENT
from .workload import Workload

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VENV = REPO / ".engines" / "bench"


class RunError(RuntimeError):
    """The generator or kubectl failed; the message says where its log is."""


def bench_venv() -> Path:
    return Path(os.environ.get("LLM_EKS_BENCH_VENV", DEFAULT_VENV))


def venv_tool(name: str) -> Path:
    path = bench_venv() / "bin" / name
    if not path.exists():
        raise RunError(f"{path}: not found; create the benchmark's virtualenv with `make bench-venv` "
                       "(Python 3.12+, requirements-bench.txt)")
    return path


def _progress(console: Console) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("requests"), TimeElapsedColumn(), console=console, transient=False)


def follow(lines: Iterable[str], workload: Workload, log: Path, console: Console, label: str) -> list[str]:
    """Copy the generator's output to `log` and move a progress bar stage by stage; returns every line."""
    stages = workload.stages()
    seen: list[str] = []
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as sink, _progress(console) as progress:
        task = progress.add_task(f"{label}: starting", total=workload.total_requests)
        for line in lines:
            sink.write(line if line.endswith("\n") else line + "\n")
            seen.append(line)
            m = STAGE_EVENT.search(line)
            if not m:
                continue
            stage = int(m.group(1))
            if stage >= len(stages):
                continue
            c = workload.level_of_stage(stage)
            what = "warm-up" if c is None else f"concurrency {c}"
            if m.group(2) == "started":
                progress.update(task, description=f"{label}: {what}")
            else:
                progress.advance(task, stages[stage]["num_requests"])
        progress.update(task, description=f"{label}: done")
    return seen


def _lines(proc: subprocess.Popen) -> Iterator[str]:
    assert proc.stdout is not None
    yield from proc.stdout


def run_local(config: dict, workload: Workload, out: Path, console: Console, label: str) -> list[str]:
    """inference-perf from the bench virtualenv against a URL, reports under out/raw."""
    exe = venv_tool("inference-perf")
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "inference-perf.yaml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([str(exe), "--config_file", str(cfg_path.resolve())], cwd=raw, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
    try:
        lines = follow(_lines(proc), workload, out / "inference-perf.log", console, label)
    finally:
        rc = proc.wait()
    if rc != 0:
        cause = failure_cause(lines)
        raise RunError(f"inference-perf exited with {rc}{': ' + cause if cause else ''}; "
                       f"its log: {out / 'inference-perf.log'}")
    return lines


# The last line of a Python traceback: "OSError: Can't load tokenizer for 'x'. ...", "httpx.ConnectError: ...".
_EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Exit))(?::\s*(.*))?$")
_HINTS = (
    ("tokenizer", "the prompts' tokenizer did not load: pass --tokenizer with a local path or a Hub id this machine "
                  "can download (the stack's model is the default)"),
    ("connect", "no server answered at the URL: check --url (and that the server is up)"),
)


def failure_cause(lines: list[str]) -> str | None:
    """The generator's last exception (and its direct cause), with what to do about the common ones: the cause
    is in its log, and a user should not have to open the log to learn it."""
    found = []
    for line in lines:
        m = _EXCEPTION_LINE.match(line.rstrip())
        if m:
            found.append(f"{m.group(1)}: {m.group(2).strip()}"[:200] if m.group(2) else m.group(1))
    if not found:
        return None
    words = found[-1] if len(found) == 1 else f"{found[-1]}, caused by {found[-2]}"  # Python's direct cause
    hint = next((h for key, h in _HINTS if any(key in f.lower() for f in found)), None)
    return f"{words}{' (' + hint + ')' if hint else ''}"


def served_models(url: str, timeout_s: float = 10.0) -> list[str] | None:
    """The model ids an OpenAI server lists at /models, or None where it does not answer."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/models", timeout=timeout_s) as r:  # noqa: S310 (user's URL)
            return [m.get("id", "") for m in json.load(r).get("data", [])]
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return None


def kubectl() -> str:
    exe = shutil.which(os.environ.get("KUBECTL", "kubectl"))
    if not exe:
        raise RunError("kubectl: not found on PATH (needed for --apply)")
    return exe


def _kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([kubectl(), *args], text=True, capture_output=True)
    if check and proc.returncode != 0:
        raise RunError(f"kubectl {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def run_job(manifest: Path, namespace: str, name: str, workload: Workload, out: Path, console: Console,
            label: str, timeout_s: int, sleep: Callable[[float], None] | None = None) -> list[str]:
    """Replace any earlier Job of the same name, apply, stream its log (the progress bar reads it), check it
    succeeded. The log is the result: bench/results.py parses it like a local run's output."""
    _kubectl("-n", namespace, "delete", "job", name, "--ignore-not-found", "--wait=true")
    _kubectl("apply", "-f", str(manifest))
    deadline = time.monotonic() + timeout_s
    # The pod needs a CPU node (Karpenter may launch one) and the image: wait until its log can be followed.
    while True:
        proc = subprocess.Popen([kubectl(), "-n", namespace, "logs", "-f", f"job/{name}"], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
        first = proc.stdout.readline() if proc.stdout else ""
        # Before the container runs, kubectl prints one error line and exits: "Error from server (BadRequest): ...
        # is waiting to start: ContainerCreating", "error: timed out waiting for the condition", ...
        if first and not first.startswith(("Error from server", "error:")):
            break
        proc.wait()
        if time.monotonic() > deadline:
            raise RunError(f"job/{name} in {namespace}: its pod did not start within {timeout_s} s "
                           f"(kubectl -n {namespace} describe job {name})")
        (sleep or time.sleep)(5)

    def lines() -> Iterator[str]:
        yield first
        yield from _lines(proc)

    try:
        seen = follow(lines(), workload, out / "inference-perf.log", console, label)
    finally:
        proc.wait()
    status = _kubectl("-n", namespace, "get", "job", name, "-o",
                      "jsonpath={.status.succeeded}/{.status.failed}", check=False).stdout.strip()
    if status.startswith("/") or status.startswith("0/") or status.endswith("/1"):
        raise RunError(f"job/{name} in {namespace} did not succeed ({status or 'unknown status'}); "
                       f"its log: {out / 'inference-perf.log'}")
    return seen


def plot(results_json: Path, out: Path) -> list[Path]:
    """bench/plot.py in the bench virtualenv (matplotlib lives there, not in ./venv)."""
    python = venv_tool("python")
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    proc = subprocess.run([str(python), "-m", "bench.plot", str(results_json), str(out)], cwd=REPO, env=env,
                          text=True, capture_output=True)
    if proc.returncode != 0:
        raise RunError(f"plots: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
    return [Path(p) for p in proc.stdout.split()]
