"""Our own code shipped to pods in a ConfigMap (the Ray Serve app, the Gradio chat app): its files and their hash.

Neither a Deployment nor KubeRay restarts pods when a ConfigMap they mount changes; the hash sits in the pod template,
so a code change changes the template and rolls the pods out.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def read_files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, str]:
    """Every file of `folder` with one of `suffixes`, as ConfigMap data (sorted: the same input, the same hash)."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir()) if p.suffix in suffixes}


def code_hash(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
