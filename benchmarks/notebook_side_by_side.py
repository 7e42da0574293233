"""One notebook at two commits, side by side on the same machine and the same inputs: the artifacts a whole
``run-notebooks`` left, as they stood before that notebook ran. Each commit gets its own copy of the artifacts folder
(checkpoints and the notebook's own model folders left out) from which every cached file written after the previous
notebook finished (by this notebook or a later one) is removed, so neither run reads what the other computed; the old
commit runs from a git worktree with its package first on ``PYTHONPATH``, the new one from this checkout. Prints and
writes both seconds; the two runs' records can then be compared.

    .venv/bin/python benchmarks/notebook_side_by_side.py --artifacts /tmp/cpu_art6 --notebook 04_evaluation \\
        --previous 03_fine_tuning --old 546d93f --new HEAD --drop learning_curve     # about 20 min on 2 cores

Hand-written because the question is "this notebook, before and after a change, on the same inputs", which no
profiler or benchmark harness answers across two checkouts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def inputs_before(artifacts: Path, profile: str, previous: str, drop: list[str], dest: Path) -> int:
    """Copy ``artifacts`` to ``dest`` without checkpoints and the ``drop`` folders, then delete every file under
    ``<profile>/cache`` written after ``previous``'s records; returns how many were deleted."""
    mark = (artifacts / profile / "metrics" / f"{previous}.json").stat().st_mtime
    shutil.copytree(artifacts, dest, ignore=shutil.ignore_patterns("checkpoints", *drop))
    removed = 0
    for path in (dest / profile / "cache").rglob("*"):
        if path.is_file() and path.stat().st_mtime > mark:
            path.unlink()
            removed += 1
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True, help="the folder a whole run-notebooks run wrote")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--notebook", required=True, help="the notebook to time, e.g. 04_evaluation")
    parser.add_argument("--previous", required=True, help="the notebook that ran just before it, e.g. 03_fine_tuning")
    parser.add_argument("--old", required=True, help="the commit before the change")
    parser.add_argument("--new", default="HEAD")
    parser.add_argument("--drop", nargs="*", default=[], help="model folders the notebook itself trains (not copied)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "notebook_side_by_side.json")
    args = parser.parse_args()
    if not (args.artifacts / args.profile / "metrics" / f"{args.previous}.json").is_file():
        raise SystemExit(f"{args.artifacts}/{args.profile}/metrics/{args.previous}.json not found: run the notebooks first")
    cli = Path(sys.executable).with_name("rerank-utils")
    work = Path(tempfile.mkdtemp(prefix="side_by_side_"))
    results = {}
    for tag, rev in (("old", args.old), ("new", args.new)):
        folder = work / f"artifacts_{tag}"
        removed = inputs_before(args.artifacts, args.profile, args.previous, args.drop, folder)
        env = {**os.environ, "RERANK_ARTIFACTS_DIR": str(folder)}
        cwd = ROOT
        if tag == "old":
            cwd = work / "old_checkout"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(cwd), rev], check=True)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cwd), os.environ.get("PYTHONPATH")]))
        start = time.perf_counter()
        subprocess.run([str(cli), "run-notebooks", "--profile", args.profile, "--only", args.notebook[:2]], cwd=cwd, env=env, check=True)
        seconds = time.perf_counter() - start
        timed = json.loads((folder / args.profile / "timings.json").read_text())["notebooks"][args.notebook]["seconds"]
        results[tag] = {"commit": rev, "notebook_seconds": timed, "wall_seconds": seconds, "cache_files_removed": removed,
                        "artifacts": str(folder)}
        print(f"{tag} ({rev}): {args.notebook} {timed:.1f} s", flush=True)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "old_checkout")], check=False)
    print(f"{args.notebook}: {results['old']['notebook_seconds']:.1f} s -> {results['new']['notebook_seconds']:.1f} s "
          f"({results['old']['notebook_seconds'] / results['new']['notebook_seconds']:.2f}x)")
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
