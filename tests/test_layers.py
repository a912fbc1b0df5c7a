"""The data flows one way: sizing -> config (schema, loader) -> plan -> components -> programs (__main__.py picks one).
Every package has a layer and imports only those below it, with no cycle; components take plan objects and never
call into sizing; the pure layers never import Pulumi; the code shipped alone to pods or a Lambda imports nothing of
the project."""

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


# Every top-level package of the project, and the project packages it may import: the layers, bottom up. The code
# shipped alone into pods or a Lambda (serving, chat_ui, weights_cache) imports none.
ALLOWED: dict[str, set[str]] = {
    "sizing": set(),
    "serving": set(),
    "chat_ui": set(),
    "weights_cache": set(),
    "config": {"sizing"},
    "plan": {"config", "sizing", "serving"},
    "components": {"config", "plan", "serving", "chat_ui"},  # never sizing: components take plan objects
    "programs": {"config", "plan", "components"},
    "preview": {"config", "plan", "sizing"},
    "bench": {"config", "plan", "preview", "sizing", "components"},
    "tools": {"sizing"},
}
PULUMI = ("pulumi", "pulumi_aws", "pulumi_eks", "pulumi_kubernetes")
NO_PULUMI = ("sizing", "plan", "serving", "chat_ui", "weights_cache")  # pure (config reads pulumi.Config only)


def packages() -> list[str]:
    """Every top-level folder of the repository holding Python code (not tests, not virtualenvs, not build output)."""
    skip = {"tests", "venv", "build", "docs", "stacks"}
    return sorted(p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in skip
                  and any(p.rglob("*.py")))


def project_imports(package: str) -> dict[str, set[str]]:
    """File -> the other project packages it imports."""
    out = {}
    for path in _modules(package):
        tops = {m.split(".")[0] for m in imported_modules(path)} & set(ALLOWED) - {package}
        if tops:
            out[str(path.relative_to(REPO))] = tops
    return out


def test_every_package_has_a_layer():
    assert packages() == sorted(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_layers_import_only_downstream(package):
    offenders = {f: sorted(tops - ALLOWED[package]) for f, tops in project_imports(package).items()
                 if tops - ALLOWED[package]}
    assert not offenders, offenders


@pytest.mark.parametrize("package", NO_PULUMI)
def test_pure_layers_register_no_resources(package):
    offenders = {str(p.relative_to(REPO)): m for p in _modules(package)
                 for m in [sorted(x for x in imported_modules(p) if x.split(".")[0] in PULUMI)] if m}
    assert not offenders, offenders


def test_the_layers_have_no_cycle():
    """The allowed imports form a DAG, so no two packages can import each other (config and plan once did)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in visiting, " -> ".join(path + (package,))
        if package in order:
            return
        visiting.add(package)
        for dep in sorted(ALLOWED[package]):
            visit(dep, path + (package,))
        visiting.discard(package)
        order.append(package)

    for package in sorted(ALLOWED):
        visit(package, ())


@pytest.mark.parametrize("program", ["__main__.py", *sorted(str(p.relative_to(REPO)) for p in (REPO / "programs").glob("*.py"))])
def test_the_programs_only_wire(program):
    """__main__.py and the programs it runs make no decisions of their own: no sizing, no arithmetic on plans."""
    modules = imported_modules(REPO / program)
    assert not any(m.startswith("sizing") for m in modules)
    tree = ast.parse((REPO / program).read_text(encoding="utf-8"))
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.BinOp, ast.Compare)) and
                any(isinstance(x, ast.Constant) and isinstance(x.value, (int, float)) for x in ast.walk(n))]
