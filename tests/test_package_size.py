"""benchmarks/package_size.py: what it counts, and a bad revision named with git's own message."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("package_size", ROOT / "benchmarks" / "package_size.py")
package_size = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(package_size)


def test_code_tokens_leave_out_docstrings_comments_and_layout():
    plain = "def f(x):\n    return x + 1\n"
    documented = 'def f(x):\n    """Add one."""\n    # a comment\n\n    return (\n        x + 1\n    )\n'
    assert package_size.code_tokens(plain) == 10  # def f ( x ) : return x + 1
    assert package_size.code_tokens(documented) == package_size.code_tokens(plain) + 2  # the two parentheses
    assert package_size.code_tokens('x = "not a docstring"\n') == 3


def test_head_counts_every_line_of_the_package(monkeypatch):
    monkeypatch.chdir(ROOT)
    parts = package_size.package_size("HEAD")
    files = subprocess.run(["git", "ls-tree", "-r", "--name-only", "HEAD", "rerank_utils"], capture_output=True, text=True,
                           check=True).stdout.split()
    py = [f for f in files if f.endswith(".py")]
    lines = sum(len(subprocess.run(["git", "show", f"HEAD:{f}"], capture_output=True, text=True, check=True).stdout.splitlines())
                for f in py)
    assert sum(c["files"] for c in parts.values()) == len(py)
    assert sum(c["lines"] for c in parts.values()) == lines
    assert {"data", "models", "training"} <= set(parts)


def test_an_unknown_revision_is_named_with_gits_message(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit, match=r"git ls-tree -r --name-only no-such-rev rerank_utils failed: fatal: .*no-such-rev"):
        package_size.package_size("no-such-rev")
