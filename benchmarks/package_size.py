"""How big is ``rerank_utils/`` at one or more git revisions: lines, blank lines and code tokens per subpackage.

Physical lines move with formatting (a call on one line or on ten); the token count does not: it counts Python
tokens with comments, docstrings, newlines and indentation left out, so it measures code, not layout. Issue 13
asks for the package to shrink; this is how its figures were measured:

    .venv/bin/python benchmarks/package_size.py a4cf859^ f51b5cd HEAD

Reads each revision with ``git show`` (nothing is checked out); hand-written because no installed tool counts
code tokens without docstrings per revision.
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import tokenize
from collections import Counter

LAYOUT = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER, tokenize.ENCODING}
DOCSTRING_OWNERS = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def code_tokens(source: str) -> int:
    """Python tokens of ``source`` other than comments, docstrings and layout."""
    doc_lines = {
        node.body[0].lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, DOCSTRING_OWNERS) and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(getattr(node.body[0], "value", None), ast.Constant) and isinstance(node.body[0].value.value, str)
    }
    return sum(
        1 for t in tokenize.generate_tokens(io.StringIO(source).readline)
        if t.type not in LAYOUT and not (t.type == tokenize.STRING and t.start[0] in doc_lines)
    )


def _git(*args: str) -> str:
    """``git args``'s output; git's own message in a ``SystemExit`` when it fails (an unknown revision, not a repository)."""
    done = subprocess.run(["git", *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"package_size.py: git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def package_size(revision: str, package: str = "rerank_utils") -> dict[str, Counter]:
    """``{subpackage or top-level module: Counter(lines, blank, tokens, files)}`` of ``package`` at ``revision``."""
    files = _git("ls-tree", "-r", "--name-only", revision, package).split()
    out: dict[str, Counter] = {}
    for path in (f for f in files if f.endswith(".py")):
        source = _git("show", f"{revision}:{path}")
        part = path.split("/")[1]
        lines = source.splitlines()
        out.setdefault(part, Counter()).update(
            lines=len(lines), blank=sum(1 for line in lines if not line.strip()), tokens=code_tokens(source), files=1
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revisions", nargs="+", help="git revisions to measure (e.g. a4cf859^ HEAD)")
    parser.add_argument("--by-part", action="store_true", help="one row per subpackage too")
    args = parser.parse_args()
    print("| revision | files | lines | blank lines | code tokens |\n|---|---|---|---|---|")
    for rev in args.revisions:
        parts = package_size(rev)
        total = sum(parts.values(), Counter())
        print(f"| {rev} | {total['files']} | {total['lines']:,} | {total['blank']:,} | {total['tokens']:,} |")
        if args.by_part:
            for part, c in sorted(parts.items()):
                print(f"| {rev} {part} | {c['files']} | {c['lines']:,} | {c['blank']:,} | {c['tokens']:,} |")


if __name__ == "__main__":
    main()
