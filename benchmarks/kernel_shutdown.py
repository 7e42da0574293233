"""What a notebook run spends stopping its kernel: papermill's default graceful shutdown (the kernel is asked to exit
and Python tears down torch, transformers and the rest) against the immediate one the runner uses
(``rerank_utils.tutorial.runner.run_notebook``: the kernel's process group is killed once the last cell has run).
Smoke notebooks, run the way the runner runs them (its kernel environment, working directory and parameters),
alternating the two modes after one warm-up run each, in one process; the figure is the median difference.

    .venv/bin/python benchmarks/kernel_shutdown.py          # about 2 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import papermill

from rerank_utils.models.precision import machine_summary
from rerank_utils.paths import ENV_ARTIFACTS, ENV_EMBEDDING_CACHE, notebooks_dir
from rerank_utils.tutorial.profiles import get_profile
from rerank_utils.tutorial.runner import KERNEL_NAME, _kernel_env, kernel_manager_options

MODES = ("graceful", "immediate")


def run_once(stem: str, mode: str, out: Path) -> float:
    path = notebooks_dir() / f"{stem}.ipynb"
    t0 = time.perf_counter()
    papermill.execute_notebook(str(path), str(out), parameters=get_profile("smoke").parameters_for(stem),
                               kernel_name=KERNEL_NAME, cwd=str(path.parent), progress_bar=False, shutdown_kernel=mode,
                               **kernel_manager_options())  # the kernels run-notebooks starts
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="+", default=["01_data_preparation", "13_labelling_your_own_data"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "kernel_shutdown.json"))
    args = parser.parse_args(argv)
    results: dict = {"_run": {"machine": machine_summary(), "repeats": args.repeats, "command": "benchmarks/kernel_shutdown.py"}}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(_kernel_env(False))
        os.environ[ENV_ARTIFACTS] = tmp  # the smoke profile's artifacts, apart from the repository's
        os.environ[ENV_EMBEDDING_CACHE] = str(Path(tmp) / "embeddings")
        for stem in args.notebooks:
            out = Path(tmp) / f"{stem}.ipynb"
            for mode in MODES:  # warm-up: splits written, corpus encoded, files in the page cache
                run_once(stem, mode, out)
            seconds: dict[str, list[float]] = {m: [] for m in MODES}
            for _ in range(args.repeats):
                for mode in MODES:
                    seconds[mode].append(round(run_once(stem, mode, out), 2))
            row = {m: {"seconds": s, "median": statistics.median(s)} for m, s in seconds.items()}
            row["saved_s"] = round(row["graceful"]["median"] - row["immediate"]["median"], 2)
            results[stem] = row
            print(f"{stem}: graceful {row['graceful']['median']:.2f} s, immediate {row['immediate']['median']:.2f} s, "
                  f"saved {row['saved_s']:.2f} s a run", flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
