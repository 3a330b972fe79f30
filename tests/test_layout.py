"""The boundaries docs/architecture.md states, checked on the code's own imports.

Every ``import`` and ``from ... import`` of the package is read with ``ast`` (those inside
functions too): the module graph must have no cycle, and the layers must not import
upwards (the engine draws nothing, viz evaluates nothing, models know nothing of data).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pixelwise"


def module_name(path: Path) -> str:
    parts = ["pixelwise", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The package modules ``path`` imports (a package's ``__init__`` counts as itself)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (
                (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            )
            submodules = [f"{target}.{alias.name}" for alias in node.names]
            # ``from . import vgg`` imports the submodule, not the package's own names
            candidates = [m for m in submodules if m in known] or [target]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c in known and c != name}
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(files)) for name, path in files.items()}


def test_no_import_cycle_between_modules(graph):
    # A package importing its own submodules (``models/__init__`` filling the registry)
    # is a table of contents, not a dependency: submodules must not import it back.
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt) :] + [nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


FORBIDDEN = [
    ("pixelwise.engine", "pixelwise.viz"),  # the engine draws nothing
    ("pixelwise.engine", "pixelwise.experiment"),
    ("pixelwise.viz", "pixelwise.engine"),  # pictures evaluate nothing
    ("pixelwise.viz", "pixelwise.experiment"),
    ("pixelwise.models", "pixelwise.data"),  # models know nothing of data, losses, loop
    ("pixelwise.models", "pixelwise.losses"),
    ("pixelwise.models", "pixelwise.engine"),
    ("pixelwise.models", "pixelwise.run"),
    ("pixelwise.metrics", "pixelwise.models"),  # figures know nothing of models
    ("pixelwise.metrics", "pixelwise.engine"),
    ("pixelwise.run", "pixelwise.engine"),  # a run is opened without the loop
    ("pixelwise.card", "pixelwise.engine"),
    ("pixelwise.inference", "pixelwise.engine"),
]


@pytest.mark.parametrize(("lower", "upper"), FORBIDDEN)
def test_layers_do_not_import_upwards(graph, lower, upper):
    inside = lambda name, prefix: name == prefix or name.startswith(prefix + ".")  # noqa: E731
    offenders = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if inside(name, lower)
        for target in targets
        if inside(target, upper)
    )
    assert not offenders, offenders


def test_every_reader_opens_a_run_through_rundir():
    """Nothing outside run.py spells a run's file names or reads a checkpoint's card keys."""
    spelled = []
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("run.py",):
            continue
        text = path.read_text()
        for needle in ('"metrics.jsonl"', '"config.yaml" /', '/ "checkpoints" /', 'card.get("'):
            if needle in text:
                spelled.append(f"{path.relative_to(PACKAGE)}: {needle}")
    assert not spelled, spelled
