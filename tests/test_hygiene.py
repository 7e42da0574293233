"""Notebook hygiene: found by glob, never a hand list. One `parameters` cell, no outputs, kernel python3,
the common parameters declared, and the defaults equal to the `cpu` profile's values."""

from __future__ import annotations

import ast
import glob
from pathlib import Path

import nbformat
import papermill
import pytest

from rerank_utils.tutorial.profiles import COMMON_PARAMETERS, PROFILES

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(glob.glob(str(ROOT / "notebooks" / "*.ipynb")))


def test_notebooks_exist():
    names = [Path(p).stem for p in NOTEBOOKS]
    assert "_template" in names and "00_concepts" in names and "01_data_preparation" in names


def _params_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{len(cells)} cells tagged 'parameters' (want exactly 1)"
    return cells[0]


def _defaults(cell) -> dict:
    out = {}
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, f"parameters cell: only `name = value` lines, got {ast.unparse(node)}"
        out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: Path(p).stem)
def test_notebook_hygiene(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"cells {dirty} carry outputs or execution counts: run `make strip`"
    params = _defaults(_params_cell(nb))
    # papermill parses the cell with its own regexes (some comments defeat them): it must see every name
    assert set(papermill.inspect_notebook(path)) == set(params)
    assert set(COMMON_PARAMETERS) <= set(params), f"missing common parameters {set(COMMON_PARAMETERS) - set(params)}"
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "sys.path" not in src and "google.colab" not in src and "!git clone" not in src
    last_code = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert last_code.source.startswith("# Record results for tests")


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if not Path(p).stem.startswith("_")], ids=lambda p: Path(p).stem)
def test_notebook_defaults_are_the_cpu_profile(path):
    stem = Path(path).stem
    params = _defaults(_params_cell(nbformat.read(path, as_version=4)))
    expected = PROFILES["cpu"].parameters_for(stem)
    for prof in PROFILES.values():  # every profile only injects names the notebook declares
        assert set(prof.parameters_for(stem)) <= set(params), (prof.name, set(prof.parameters_for(stem)) - set(params))
    assert {k: params[k] for k in expected} == expected
