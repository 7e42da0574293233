"""Where a whole tutorial run's time goes: runs ``rerank-utils run-notebooks --profile P`` with
``benchmarks/profile_hook`` on ``PYTHONPATH`` (its ``sitecustomize`` times the model calls in every notebook kernel),
then sums the kernels' files into: scoring pairs outside training, scoring while validating during training, training
steps (``Trainer.train`` less its ``evaluate``), embeddings, export and quantisation, the rest of the run.

    RERANK_ARTIFACTS_DIR=/tmp/cpu_prof .venv/bin/python benchmarks/where_time_goes.py --profile cpu   # a whole run
    .venv/bin/python benchmarks/where_time_goes.py --summarize /tmp/prof_out --total 2745             # files only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOOK = Path(__file__).parent / "profile_hook"


def summarize(folder: Path, total: float) -> dict[str, float]:
    """Seconds by kind over every kernel's file in ``folder``; ``rest`` is ``total`` less all of them."""
    out = dict.fromkeys(("scoring outside training", "scoring while validating", "training steps", "embeddings",
                         "export and quantisation"), 0.0)
    for path in folder.glob("*.json"):
        for key, (seconds, _calls) in json.loads(path.read_text())["seconds_calls"].items():
            parts = key.split("/")
            if parts[-1].endswith("predict") and "train" not in parts:
                out["scoring outside training"] += seconds
            elif parts[-1].endswith("predict") and "evaluate" in parts:
                out["scoring while validating"] += seconds
            elif key == "train":
                out["training steps"] += seconds
            elif key == "train/evaluate":
                out["training steps"] -= seconds
            elif parts[-1] == "st.encode":
                out["embeddings"] += seconds
            elif len(parts) == 1 and parts[0].startswith("export."):
                out["export and quantisation"] += seconds
    out["rest"] = total - sum(out.values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--summarize", type=Path, help="only sum the files an earlier run left in this folder")
    parser.add_argument("--total", type=float, help="with --summarize: the run's seconds of notebooks")
    args = parser.parse_args()
    if args.summarize:
        if args.total is None:
            raise SystemExit("--summarize needs --total: the run's seconds of notebooks (its last line prints them)")
        folder, total = args.summarize, args.total
    else:
        folder = Path(tempfile.mkdtemp(prefix="where_time_goes_"))
        env = {**os.environ, "RERANK_PROFILE_DIR": str(folder),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")]))}
        start = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("rerank-utils")), "run-notebooks", "--profile", args.profile], env=env, check=True)
        total = time.perf_counter() - start
    for kind, seconds in summarize(folder, total).items():
        print(f"{kind:26s} {seconds:8.1f} s  {seconds / total:5.1%}")
    print(f"{'whole run':26s} {total:8.1f} s  (kernel files: {folder})")


if __name__ == "__main__":
    main()
