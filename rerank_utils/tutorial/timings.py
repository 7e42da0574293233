"""How long the notebooks took: ``artifacts/<profile>/timings.json`` written by ``run-notebooks`` (per notebook, per
cell that ran 10 s or more, per run with its machine) and read back as the table the READMEs show.

``python -m rerank_utils.tutorial.timings --profile cpu`` prints that table from the profile's last runs, and says
whether its rows come from ONE run (the figure to publish) or from several (a partial rerun replaced some notebooks:
then the total is a stitch, and the table says so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

from rerank_utils.paths import artifacts_dir

LONG_CELL = 10.0  # seconds: a cell that ran this long is listed in timings.json


def machine() -> dict[str, Any]:
    """The machine a run was timed on (timings.json, the README's tables)."""
    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(), "system": platform.platform(),
            "python": platform.python_version()}


def save_timings(profile: str, run_id: str, seconds: dict[str, float], cells: dict[str, list]) -> Path:
    """``artifacts/<profile>/timings.json``: per notebook its seconds, its long cells and the run it came from; per
    run its machine. A later partial run replaces only its own notebooks, and says so by its run id."""
    path = artifacts_dir(profile) / "timings.json"
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if "notebooks" not in old:  # nothing yet, or the flat {notebook: seconds} of earlier versions
        old = {"notebooks": {}, "runs": {}}
    old["runs"][run_id] = {"machine": machine(), "notebooks": list(seconds)}
    for nb, s in seconds.items():
        old["notebooks"][nb] = {"seconds": s, "run": run_id, "long_cells": cells.get(nb, [])}
    path.write_text(json.dumps(old, indent=1), encoding="utf-8")
    return path


def read_timings(profile: str) -> dict[str, Any]:
    """timings.json of ``profile`` (``{"notebooks": {}, "runs": {}}`` when there is none)."""
    path = artifacts_dir(profile) / "timings.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return data if "notebooks" in data else {"notebooks": {}, "runs": {}}


def timings_markdown(profile: str) -> str:
    """The table of ``profile``'s timings: notebook, seconds, its longest cell; the total; the run(s) and machine."""
    data = read_timings(profile)
    rows = data["notebooks"]
    if not rows:
        return f"no timings for profile {profile!r} yet: run `rerank-utils run-notebooks --profile {profile}`\n"
    lines = ["| notebook | seconds | longest cell |", "|---|---|---|"]
    for nb, row in sorted(rows.items()):
        longest = max(row["long_cells"], key=lambda c: c["seconds"], default=None)
        note = f"{longest['seconds']:.0f} s: `{longest['source']}`" if longest else ""
        lines.append(f"| {nb} | {row['seconds']:.0f} | {note} |")
    total = sum(r["seconds"] for r in rows.values())
    lines.append(f"| **total** | **{total:.0f}** ({total / 60:.1f} min) | |")
    runs = sorted({r["run"] for r in rows.values()})
    machines = {json.dumps(data["runs"].get(run, {}).get("machine", {}), sort_keys=True) for run in runs}
    machine_text = "; ".join(
        f"{m.get('cpus')} CPUs, {m.get('processor')}, Python {m.get('python')}" for m in map(json.loads, machines))
    if len(runs) == 1:
        lines.append(f"\nOne run ({runs[0]}) on {machine_text}.")
    else:
        lines.append(f"\nStitched from {len(runs)} runs ({', '.join(runs)}), on {machine_text}: rerun the whole profile for one figure.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rerank_utils.tutorial.timings", description="Print a profile's notebook timings.")
    parser.add_argument("--profile", default="cpu")
    print(timings_markdown(parser.parse_args(argv).profile), end="")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
