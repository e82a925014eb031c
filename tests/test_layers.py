"""The house in wings, kept: imports run one way along the pipeline (each wing imports only wings below it), no
import cycle anywhere, the networks and metrics never import Lightning, and no function is longer than a screen.

Read from the source (every ``import``, in functions too), not from what a test happens to import.
"""

import ast
from pathlib import Path

import pytest

from helpers import REPO

# the wings from the bottom up: a module may import its own wing's modules and those of wings listed before it
LAYERS = [
    "common",
    "physics",
    "metrics",
    "store",
    "ingest",
    "data_modules",
    "model",
    "analysis",
    ("callbacks", "explorer", "api"),
    "cli",
]
RANK = {wing: i for i, entry in enumerate(LAYERS) for wing in (entry if isinstance(entry, tuple) else (entry,))}
PACKAGE = "spectra_lightning"
MAX_FUNCTION_LINES = 80


def sources() -> dict[str, Path]:
    """``{dotted module name: file}`` of the installed package (data_modules/ and callbacks/ under its name)."""
    out = {}
    for folder, prefix in ((REPO / PACKAGE, PACKAGE), (REPO / "data_modules", f"{PACKAGE}.data_modules")):
        out |= {_name(p, folder, prefix): p for p in folder.rglob("*.py")}
    out |= {_name(p, REPO / "callbacks", f"{PACKAGE}.callbacks"): p for p in (REPO / "callbacks").rglob("*.py")}
    return out


def _name(path: Path, folder: Path, prefix: str) -> str:
    parts = list(path.relative_to(folder).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([prefix, *parts])


def imports(module: str, path: Path, modules=frozenset()) -> set[str]:
    """Every module name ``module`` imports, anywhere in it (relative imports resolved). ``from P import a``
    counts ``P.a`` where that is one of ``modules`` (a submodule), else ``P``."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            subs = {f"{base}.{a.name}" for a in node.names} & set(modules)
            found |= subs or {base}
    return {name for name in found if name.startswith(PACKAGE)}


def wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = sources()
    return {m: {i for i in imports(m, p, frozenset(mods)) if i in mods} for m, p in mods.items()}


def test_every_module_lies_in_a_declared_wing():
    loose = [m for m in sources() if wing(m) is None and m not in (PACKAGE, f"{PACKAGE}.__main__")]
    assert loose == [], f"modules outside the wings {sorted(RANK)}: {loose}"


def test_imports_run_one_way_along_the_pipeline(graph):
    upward = [
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if wing(a) and wing(b) and wing(a) != wing(b) and RANK[wing(b)] >= RANK[wing(a)]
    ]
    assert upward == [], "imports against the layers (docs/architecture.md):\n" + "\n".join(sorted(upward))


def test_no_import_cycle(graph):
    """Tarjan's strongly connected components: every one a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_layer_check_sees_an_import_against_the_layers(tmp_path):
    """The checks above can fail: an upward import, a function-level one, and a cycle are all seen."""
    up = tmp_path / "x.py"
    up.write_text("def f():\n    from spectra_lightning.cli.commands import main\n")
    (found,) = imports(f"{PACKAGE}.store.x", up, frozenset(sources()))
    assert RANK[wing(found)] > RANK["store"]


@pytest.mark.parametrize("wing_name", ["physics", "metrics"])
def test_physics_metrics_and_networks_never_import_lightning(wing_name):
    mods = {m: p for m, p in sources().items() if wing(m) == wing_name or m == f"{PACKAGE}.model.nets"}
    for module, path in mods.items():
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(n.split(".")[0] in ("lightning", "pytorch_lightning") for n in names), module


def test_functions_fit_a_screen():
    long = []
    for module, path in sources().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {length} lines")
    assert long == [], f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)
