"""One claim over several split seeds (issue 12): the paired differences measured on each seed's test split, with
their mean and spread, so a verdict does not rest on one lucky split of 99 questions.

The per-seed figures are what ``benchmarks/retriever_vs_reranker.py`` and ``benchmarks/reranker_search.py``
save (``{seed: {"test": {pipeline: {"ndcg@10": x} | x}, "intervals": {name: [diff, low, high]}}}``); notebook 04
reads the committed results file and shows them beside its own single-split table. Introduced in
notebook ``04_evaluation``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

from rerank_utils.paths import repo_root

RESULTS = Path("benchmarks") / "results" / "retriever_vs_reranker.json"


def load_seed_results(path: str | Path | None = None) -> dict:
    """The saved per-seed results (default: the repository's ``benchmarks/results/retriever_vs_reranker.json``).
    A missing or malformed file is an error that names it and the command that writes it."""
    path = Path(path) if path else repo_root() / RESULTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no per-seed results; run `.venv/bin/python benchmarks/retriever_vs_reranker.py --seeds 42 43 44`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err.msg}, line {err.lineno})") from err
    for seed, entry in data.items():
        for key in ("test", "intervals"):
            if key not in entry:
                raise ValueError(f"{path}: seed {seed} has no {key!r} entry")
    return data


def _ndcg(value) -> float:
    return value["ndcg@10"] if isinstance(value, dict) else float(value)


def seed_rows(data: dict) -> list[dict]:
    """One row per pipeline: its test NDCG@10 on each seed (``seed <n>``), the mean and the range."""
    seeds = sorted(data, key=int)
    names = list(dict.fromkeys(n for s in seeds for n in data[s]["test"]))
    rows = []
    for name in names:
        values = {f"seed {s}": _ndcg(data[s]["test"][name]) for s in seeds if name in data[s]["test"]}
        rows.append({"pipeline": name, **values, "mean": sum(values.values()) / len(values), "seeds": len(values)})
    return rows


def interval_rows(data: dict) -> list[dict]:
    """One row per comparison: each seed's ``diff [low, high]``, the mean difference, its min and max over the
    seeds, and on how many seeds the interval lies above zero / contains zero / lies below zero."""
    seeds = sorted(data, key=int)
    names = list(dict.fromkeys(n for s in seeds for n in data[s]["intervals"]))
    rows = []
    for name in names:
        cells = {s: data[s]["intervals"][name] for s in seeds if name in data[s]["intervals"]}
        diffs = [c[0] for c in cells.values()]
        rows.append({
            "comparison": name,
            **{f"seed {s}": "{:+.3f} [{:+.3f}, {:+.3f}]".format(*c) for s, c in cells.items()},
            "mean diff": sum(diffs) / len(diffs), "min diff": min(diffs), "max diff": max(diffs),
            "above zero": sum(c[1] > 0 for c in cells.values()), "contain zero": sum(c[1] <= 0 <= c[2] for c in cells.values()),
            "below zero": sum(c[2] < 0 for c in cells.values()), "seeds": len(cells),
        })
    return rows


def markdown(rows: list[dict], digits: int = 3) -> str:
    """Rows as a Markdown table, numbers rounded to ``digits`` (signed in the ``diff`` columns), for the
    benchmark scripts and the README."""
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def cell(col, v):
        if isinstance(v, float):
            return f"{v:+.{digits}f}" if "diff" in col else f"{v:.{digits}f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(c, r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def seed_benchmark_main(description: str, out: Path, run_seed: Callable[[int, Path], dict], table: Callable[[dict], str],
                        workdir: str, argv: list[str] | None = None) -> dict:
    """The command line of a benchmark that runs per split seed (``--seeds``, ``--workdir``, ``--force``,
    ``--table``): each seed's ``run_seed(seed, workdir/seed<n>)`` is saved into ``out`` as soon as it ends, kept
    across runs, and skipped when saved unless ``--force``; the saved seeds' ``table`` is printed last."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="*", default=[42])
    ap.add_argument("--workdir", default=workdir)
    ap.add_argument("--force", action="store_true", help="run a seed again even if its result is saved")
    ap.add_argument("--table", action="store_true", help="print the saved results' table only")
    args = ap.parse_args(argv)
    done = load_seed_results(out) if Path(out).is_file() else {}
    if not args.table:
        for seed in args.seeds:
            if str(seed) in done and not args.force:
                print(f"seed {seed}: saved, skipped (--force runs it again)")
                continue
            done[str(seed)] = run_seed(seed, Path(args.workdir) / f"seed{seed}")
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(json.dumps(done, indent=1), encoding="utf-8")
            print(json.dumps(done[str(seed)]["intervals"], indent=1), flush=True)
    if done:
        print(table(done))
    return done
