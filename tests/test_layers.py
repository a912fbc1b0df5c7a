"""The data flows one way: config (schema, loader) -> plan -> components -> __main__.py. Components take plan objects
and never call into sizing; sizing never imports Pulumi; the plan layer imports no component."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package, forbidden", [
    ("components", ("sizing", "config.planning")),
    ("sizing", ("pulumi", "pulumi_aws", "pulumi_eks", "pulumi_kubernetes", "components", "plan", "config")),
    ("plan", ("pulumi", "pulumi_aws", "pulumi_eks", "pulumi_kubernetes", "components")),
    ("config", ("components", "plan.models", "plan.stack")),  # it may read sizing's allowed values
])
def test_layers_import_only_downstream(package, forbidden):
    offenders = {}
    for path in _modules(package):
        bad = sorted(m for m in imported_modules(path) if any(m == f or m.startswith(f + ".") for f in forbidden))
        if bad:
            offenders[str(path.relative_to(REPO))] = bad
    assert not offenders, offenders


@pytest.mark.parametrize("program", ["__main__.py", *sorted(str(p.relative_to(REPO)) for p in (REPO / "programs").glob("*.py"))])
def test_the_programs_only_wire(program):
    """__main__.py and the programs it runs make no decisions of their own: no sizing, no arithmetic on plans."""
    modules = imported_modules(REPO / program)
    assert not any(m.startswith("sizing") for m in modules)
    tree = ast.parse((REPO / program).read_text(encoding="utf-8"))
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.BinOp, ast.Compare)) and
                any(isinstance(x, ast.Constant) and isinstance(x.value, (int, float)) for x in ast.walk(n))]
