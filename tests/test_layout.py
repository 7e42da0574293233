"""The package by stage stays walkable (issue 13): every ``rerank_utils`` name a reader meets in the READMEs,
notebooks, configs, docstrings, tests and benchmarks leads to a module or function that exists; no module grows past
600 lines; the modules' top-level imports have no cycle."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rerank_utils"
REFERENCE = re.compile(r"rerank_utils(?:[./][A-Za-z_][A-Za-z0-9_]*)+")
FROM_IMPORT = re.compile(r"from (rerank_utils[A-Za-z0-9_.]*) import \(?([A-Za-z0-9_, ]+)")  # also in README / notebook prose
READ = ("rerank_utils/**/*.py", "tests/**/*.py", "benchmarks/*.py", "scripts/*", "*.md", "*/*.md", "notebooks/*.ipynb",
        "configs/*.yaml", "pyproject.toml", "Makefile")


def _resolves(reference: str) -> bool:
    """``rerank_utils.a.b.name`` or ``rerank_utils/a/b.py``: the longest importable module, then attributes."""
    parts = re.split(r"[./]", reference.removesuffix(".py"))
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for name in parts[i:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_every_reference_to_the_package_resolves():
    stale: dict[str, set[str]] = {}
    for pattern in READ:
        for path in ROOT.glob(pattern):
            if path.is_file() and ".venv" not in path.parts and path != Path(__file__).resolve():  # not its own examples
                text = path.read_text(encoding="utf-8", errors="ignore")
                references = [m.group(0).rstrip(".") for m in REFERENCE.finditer(text)]
                references += [f"{m.group(1)}.{name.split(' as ')[0].strip()}" for m in FROM_IMPORT.finditer(text)
                               for name in m.group(2).split(",") if name.strip()]
                for reference in references:
                    if not _resolves(reference):
                        stale.setdefault(reference, set()).add(str(path.relative_to(ROOT)))
    assert not stale, f"names of modules or functions that do not exist (renamed or moved?): {stale}"


def test_the_reference_check_finds_a_moved_module():
    assert _resolves("rerank_utils.models.bridge.encode_pairs") and _resolves("rerank_utils/tutorial/profiles.py")
    assert not _resolves("rerank_utils.bridge") and not _resolves("rerank_utils/config.py")
    assert not _resolves("rerank_utils.models.bridge.no_such_function")


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_600_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 600, "split it by what it holds"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules ``path`` imports when it is imported (not inside functions or ``if TYPE_CHECKING``)."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n in known}
    return found


def test_no_import_cycle():
    known = {_module_name(p) for p in MODULES}
    graph = {_module_name(p): _top_level_imports(p, known) for p in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert graph["rerank_utils.models.loading"] >= {"rerank_utils.models.bridge"}  # the graph was read
