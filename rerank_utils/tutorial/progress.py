"""What a headless notebook run is doing, read from the executed copy papermill keeps saving.

papermill saves the output notebook when a cell starts and every 30 seconds while it runs, with each code cell's
``metadata.papermill`` (``status``, ``start_time``, ``duration``). :class:`CellWatcher` reads that copy in a thread
and reports a cell that has run longer than ``slow_after`` seconds (which cell of how many, for how long, its first
line) every ``every`` seconds, so ``make tutorial`` never sits silent through a 9-minute training cell;
:func:`cell_timings` reads the finished copy's durations, which ``run-notebooks`` writes to ``timings.json``.
Hand-written because papermill's own progress bar (tqdm over cells) shows neither the cell nor its age in a log.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import nbformat


def _first_line(source: str) -> str:
    line = next((x.strip() for x in source.splitlines() if x.strip() and not x.strip().startswith("#")), "")
    return line if len(line) <= 80 else line[:77] + "..."


def _read(path: Path):
    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # not written yet, or caught half-written: read it next time
        return None


def running_cell(path: str | Path, now: datetime | None = None, last_started: bool = False) -> dict | None:
    """``{cell, of, seconds, source}`` of the code cell the executed copy at ``path`` says is running, else None
    (``cell`` counts code cells from 1). ``last_started``: the last cell that started, running or not: after a
    timeout, the cell it stopped (papermill marks that one "completed")."""
    nb = _read(Path(path))
    if nb is None:
        return None
    code = [c for c in nb.cells if c.cell_type == "code"]
    order = reversed(list(enumerate(code, 1))) if last_started else enumerate(code, 1)
    for i, cell in order:
        pm = cell.metadata.get("papermill", {})
        if pm.get("start_time") and (last_started or pm.get("status") == "running"):
            start = datetime.fromisoformat(pm["start_time"].replace("Z", "+00:00"))
            if start.tzinfo is None:
                start = start.replace(tzinfo=timezone.utc)
            seconds = ((now or datetime.now(timezone.utc)) - start).total_seconds()
            return {"cell": i, "of": len(code), "seconds": seconds, "source": _first_line(cell.source)}
    return None


def cell_timings(path: str | Path, at_least: float = 0.0) -> list[dict]:
    """``[{cell, seconds, source}]`` of each code cell of a finished executed copy that ran ``at_least`` seconds."""
    nb = _read(Path(path))
    if nb is None:
        return []
    rows = []
    for i, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), 1):
        duration = cell.metadata.get("papermill", {}).get("duration")
        if duration is not None and duration >= at_least:
            rows.append({"cell": i, "seconds": round(float(duration), 1), "source": _first_line(cell.source)})
    return rows


class CellWatcher:
    """``with CellWatcher(output, "03_fine_tuning", print): papermill.execute_notebook(..., output)``: reports the
    running cell once it has run ``slow_after`` seconds, then every ``every`` seconds while it still runs, with the
    seconds it took before where ``expected`` has them."""

    def __init__(self, output: str | Path, name: str, report: Callable[[str], None], every: float = 60.0,
                 slow_after: float = 30.0, poll: float | None = None, expected: dict[int, float] | None = None):
        self.output, self.name, self.report = Path(output), name, report
        self.expected = expected or {}  # cell number -> seconds it took before (rerank_utils.tutorial.estimates)
        self.every, self.slow_after, self.poll = every, slow_after, poll or min(5.0, slow_after / 3)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"watch {name}", daemon=True)
        self.reports = 0

    def _watch(self) -> None:
        last: tuple[int, float] | None = None  # (cell, when reported)
        while not self._stop.wait(self.poll):
            cell = running_cell(self.output)
            if cell is None or cell["seconds"] < self.slow_after:
                continue
            now = time.monotonic()
            if last is not None and last[0] == cell["cell"] and now - last[1] < self.every:
                continue
            before = self.expected.get(cell["cell"])
            of = f" (about {before:.0f} s expected)" if before else ""
            self.report(f"  {self.name}: cell {cell['cell']}/{cell['of']} running for {cell['seconds']:.0f} s{of}: {cell['source']}")
            self.reports += 1
            last = (cell["cell"], now)

    def __enter__(self) -> "CellWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.poll + 5)
