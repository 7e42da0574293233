"""The ``rerank-utils`` command (also ``python -m rerank_utils``).

    rerank-utils run-notebooks --profile smoke            # every notebook, in order
    rerank-utils run-notebooks --profile cpu --only 01     # one notebook
    rerank-utils run-notebooks --from 00 --to 01           # a range
    rerank-utils profiles                                  # what each profile runs
"""

from __future__ import annotations

import argparse
import json
import sys

from .config import DEFAULT_PROFILE, PROFILES


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank-utils", description="Fine-tune cross-encoder rerankers for RAG.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run-notebooks",
        help="run the notebooks headlessly with papermill on a profile",
        description="Run notebooks/NN_*.ipynb in number order with papermill (kernel python3, cwd notebooks/). "
        "Executed copies go to artifacts/<profile>/executed/, the run's report to artifacts/<profile>/REPORT.md.",
    )
    run.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES), help="parameter set (default: %(default)s)")
    run.add_argument("--only", nargs="+", metavar="NB", help="run only these notebooks (numbers like 01 or names)")
    run.add_argument("--from", dest="start", metavar="NB", help="first notebook of a range (inclusive)")
    run.add_argument("--to", dest="end", metavar="NB", help="last notebook of a range (inclusive)")
    run.add_argument("--cell-timeout", type=int, metavar="SECONDS", help="per-cell limit (default: the profile's)")
    run.add_argument("--log-output", action="store_true", help="stream the notebooks' output to this terminal")
    run.add_argument("--list", action="store_true", help="list the selected notebooks and their parameters, run nothing")
    run.add_argument("--notebooks-dir", metavar="DIR", help="folder of NN_*.ipynb notebooks (default: the repository's notebooks/)")

    sub.add_parser("profiles", help="show every profile's parameters")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "profiles":
        for prof in PROFILES.values():
            print(f"{prof.name}: {prof.description}")
            print(f"  common: {json.dumps(prof.common)}")
            for nb, params in prof.notebooks.items():
                print(f"  {nb}: {json.dumps(params)}")
        return 0

    from .notebooks import NotebookParameterError, NotebookRunError, discover_notebooks, run_notebooks, select_notebooks

    if args.list:
        prof = PROFILES[args.profile]
        for p in select_notebooks(discover_notebooks(args.notebooks_dir), only=args.only, start=args.start, end=args.end):
            print(f"{p.stem}: {json.dumps(prof.parameters_for(p.stem))}")
        return 0
    try:
        run_notebooks(
            profile=args.profile,
            only=args.only,
            start=args.start,
            end=args.end,
            cell_timeout=args.cell_timeout,
            folder=args.notebooks_dir,
            progress=lambda msg: print(msg, flush=True),
            progress_bar=sys.stderr.isatty(),
            log_output=args.log_output,
        )
    except (NotebookRunError, NotebookParameterError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
