"""Run the notebook sequence headlessly with papermill, and record what notebooks measure.

* :func:`run_notebooks` runs ``notebooks/NN_*.ipynb`` in number order for a profile (kernel ``python3``,
  working directory ``notebooks/``, a per-cell timeout), writes the executed copies to
  ``artifacts/<profile>/executed/`` and ends with ``artifacts/<profile>/REPORT.md``.
* what the notebooks record, and the tests read back, is :mod:`rerank_utils.tutorial.records`.
* each kernel is stopped at once when its notebook has run, without Python's slow teardown (:func:`run_notebook`).
* the kernels share one corpus-embedding cache, ``artifacts/<profile>/cache/embeddings``
  (:mod:`rerank_utils.retrieval.embedding_cache`), and one cache of reranker scores, ``.../cache/scores``
  (:mod:`rerank_utils.models.score_memo`), so a later notebook reads back what an earlier one encoded or scored.

The command line is ``rerank-utils run-notebooks --profile smoke`` (see :mod:`rerank_utils.cli.main`).
Introduced in notebook ``00_concepts`` (recording) and the README (running).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import nbformat
import papermill
from jupyter_client.manager import AsyncKernelManager
from papermill.exceptions import PapermillExecutionError
from traitlets import default

from rerank_utils.paths import CACHE_VARIABLES, ENV_ARTIFACTS, NOTEBOOK_GLOB, artifacts_dir, discover_notebooks, notebooks_dir, profile_caches
from rerank_utils.tutorial.estimates import forecast
from rerank_utils.tutorial.profiles import get_profile
from rerank_utils.tutorial.progress import CellWatcher, cell_timings, running_cell
from rerank_utils.tutorial.timings import LONG_CELL, read_timings, save_timings

KERNEL_NAME = "python3"
SLOW_CELL, REPORT_EVERY = 30.0, 60.0  # seconds: a cell running this long is reported, then again every minute
# ---------------------------------------------------------------------------------------------- runner
class NotebookParameterError(ValueError):
    """A notebook lacks a parameter the runner would inject, or lacks its ``parameters`` cell."""


class NotebookRunError(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and the error."""
    def __init__(self, message: str, notebook: Path, output: Path | None = None):
        super().__init__(message)
        self.notebook = notebook
        self.output = output


def _matches(path: Path, key: str) -> bool:
    """``"0"``/``"00"`` match ``00_concepts`` by number; otherwise the full stem or its beginning."""
    key = Path(key).name.removesuffix(".ipynb")
    if key.isdigit():
        return path.stem.split("_", 1)[0] == key.zfill(2)
    return path.stem == key or path.stem.startswith(key)


def select_notebooks(
    paths: Iterable[Path], only: Iterable[str] | None = None, start: str | None = None, end: str | None = None
) -> list[Path]:
    """Filter by names or numbers (``only=["00", "01_data_preparation"]``) or an inclusive range."""
    paths = list(paths)

    def hits(key: str) -> list[Path]:
        found = [p for p in paths if _matches(p, key)]
        if not found:
            raise ValueError(f"no notebook matches {key!r}; available: {', '.join(p.stem for p in paths)}")
        return found

    if only:
        return sorted({p for key in only for p in hits(key)})
    lo = paths.index(hits(start)[0]) if start else 0
    hi = paths.index(hits(end)[0]) if end else len(paths) - 1
    return paths[lo : hi + 1]


def declared_parameters(path: Path) -> dict[str, Any]:
    """The names declared in the notebook's single ``parameters`` cell (papermill's own parser)."""
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise NotebookParameterError(
            f"{path.name}: {len(tagged)} cells are tagged 'parameters'; exactly one must be, or papermill "
            "would inject values at the top and the notebook's defaults would silently win"
        )
    return papermill.inspect_notebook(str(path))


def check_parameters(path: Path, parameters: dict[str, Any]) -> None:
    """Raise :class:`NotebookParameterError` if ``parameters`` holds a name the notebook does not declare.

    papermill only warns about unknown names; a typo would silently run the full-size default.
    """
    declared = declared_parameters(path)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise NotebookParameterError(
            f"{path.name} does not declare parameter(s) {', '.join(unknown)} in its 'parameters' cell "
            f"(it declares: {', '.join(declared) or 'nothing'}). Add them to the cell or fix the profile "
            "in rerank_utils/tutorial/profiles.py."
        )


class UnixSocketKernelManager(AsyncKernelManager):
    """nbclient's kernel manager with the kernel on Unix sockets (``transport="ipc"``) in the temporary folder, not on
    localhost TCP ports: ipykernel 7 warns that a TCP kernel is unencrypted, once per kernel (eleven lines amid a
    tutorial run's progress), and asks for this; no port is open while a notebook runs. The socket files are
    removed with the kernel (jupyter_client's own clean-up). Hand-written because papermill and nbclient take a
    kernel manager class but have no option for the transport."""

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"

    @default("ip")
    def _default_ip(self) -> str:  # an absolute prefix: jupyter_client's own is relative to the working directory
        return os.path.join(tempfile.gettempdir(), f"rerank-kernel-{uuid.uuid4().hex[:12]}")


def kernel_manager_options() -> dict[str, Any]:
    """papermill's keyword for :class:`UnixSocketKernelManager` where Unix sockets work; else none (papermill's TCP on
    localhost): on Windows, and where the temporary folder's path is too long for a socket's name (about 100 bytes)."""
    longest = os.path.join(tempfile.gettempdir(), "rerank-kernel-" + "0" * 12 + "-65535")
    if os.name != "posix" or len(os.fsencode(longest)) > 100:
        return {}
    return {"kernel_manager_class": UnixSocketKernelManager}


def _kernel_env(profile_needs_hub: bool) -> dict[str, str]:
    env: dict[str, str] = {"MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1", "TOKENIZERS_PARALLELISM": "false"}
    if not profile_needs_hub:
        env["HF_HUB_OFFLINE"] = "1"  # offline profiles never touch the network
    ours = Path(sys.prefix) / "share" / "jupyter"
    if (ours / "kernels" / KERNEL_NAME).is_dir():
        # Prefer this environment's `python3` kernel over a user-level one pointing at another Python.
        env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(ours), os.environ.get("JUPYTER_PATH", "")]))
    return env


def run_notebook(
    path: Path,
    parameters: dict[str, Any],
    output: Path,
    cell_timeout: int,
    cwd: Path | None = None,
    progress_bar: bool = False,
    log_output: bool = False,
    report: Callable[[str], None] | None = None,
    expected_cells: dict[int, float] | None = None,
) -> Path:
    """Execute one notebook with papermill; on failure raise :class:`NotebookRunError` naming the cell. With
    ``report``, a cell running longer than 30 s is reported every minute (:class:`~rerank_utils.tutorial.progress.CellWatcher`),
    with the seconds ``expected_cells`` gives it (cell number -> seconds)."""
    check_parameters(path, parameters)
    output.parent.mkdir(parents=True, exist_ok=True)
    watcher = (CellWatcher(output, path.stem, report, every=REPORT_EVERY, slow_after=SLOW_CELL, expected=expected_cells)
               if report else contextlib.nullcontext())
    try:
        with watcher:
            papermill.execute_notebook(
                str(path),
                str(output),
                parameters=parameters,
                kernel_name=KERNEL_NAME,
                cwd=str(cwd or path.parent),
                progress_bar=progress_bar,
                log_output=log_output,
                execution_timeout=cell_timeout,
                # Once the last cell has run (or one failed), kill the kernel's process group at once: a graceful
                # shutdown waits for Python to tear torch and friends down, 1.5-2 s a smoke notebook
                # (benchmarks/kernel_shutdown.py). Every record, figure and model a cell writes is on disk when the
                # cell ends, so nothing is lost (tests/unit/tutorial/test_runner.py).
                shutdown_kernel="immediate",
                **kernel_manager_options(),
            )
    except PapermillExecutionError as exc:
        first_line = next((line for line in exc.source.splitlines() if line.strip()), "")
        raise NotebookRunError(
            f"{path.name} failed in cell {exc.cell_index} (execution count {exc.exec_count}): "
            f"{exc.ename}: {exc.evalue}\n  cell starts with: {first_line}\n  executed copy: {output}",
            path,
            output,
        ) from None
    except Exception as exc:  # a timeout, a dead kernel, a missing kernel
        cell = running_cell(output, last_started=True)
        where = f" in cell {cell['cell']}/{cell['of']} ({cell['source']})" if cell else ""
        limit = f"; the per-cell limit is {cell_timeout} s (--cell-timeout raises it)" if "timeout" in type(exc).__name__.lower() else ""
        raise NotebookRunError(f"{path.name} could not run{where}: {type(exc).__name__}: {exc}{limit}", path, output) from exc
    return output


@dataclass
class RunSummary:
    profile: str
    notebooks: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # notebook -> its executed copy
    cells: dict[str, list] = field(default_factory=dict)  # notebook -> its cells that ran >= LONG_CELL seconds
    report: Path | None = None
    run_id: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds"))

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def run_notebooks(
    profile: str = "cpu",
    only: Iterable[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    cell_timeout: int | None = None,
    folder: str | Path | None = None,
    progress: Callable[[str], None] | None = print,
    progress_bar: bool = False,
    log_output: bool = False,
) -> RunSummary:
    """Run the notebooks of ``folder`` (default ``notebooks/``) in number order on ``profile``.

    Parameters are checked for every selected notebook before the first one runs. A failing notebook
    stops the run with :class:`NotebookRunError`. Ends by writing ``artifacts/<profile>/REPORT.md``.
    """
    prof = get_profile(profile)
    paths = select_notebooks(discover_notebooks(folder), only=only, start=start, end=end)
    if not paths:
        raise FileNotFoundError(f"no notebooks matching {NOTEBOOK_GLOB} in {folder or notebooks_dir()}")
    plan = {p: prof.parameters_for(p.stem) for p in paths}
    for p, params in plan.items():
        check_parameters(p, params)

    timeout = cell_timeout or prof.cell_timeout
    executed = artifacts_dir(profile, "executed")
    summary = RunSummary(profile=profile)
    saved_env = {k: os.environ.get(k) for k in [*_kernel_env(prof.needs_hub), ENV_ARTIFACTS, *CACHE_VARIABLES]}
    os.environ.update(_kernel_env(prof.needs_hub))
    os.environ[ENV_ARTIFACTS] = str(artifacts_dir(profile).parent)  # the kernel writes where we read
    # corpus embeddings once per (model weights, corpus) and a reranker's score of a pair once per model weights, for
    # the whole run (14 re-evaluates what 03 scored), unless the caller chose the folders
    for name, folder in profile_caches(profile).items():
        os.environ.setdefault(name, folder)
    say = progress or (lambda message: None)
    stems = [p.stem for p in plan]
    ahead = forecast(profile)  # read before this run writes its own timings
    if ahead.sources(stems):
        say(f"forecast: {ahead.sources(stems)}")
    try:
        for i, (p, params) in enumerate(plan.items(), 1):
            note = ahead.notebook(p.stem, stems[i:], pace=ahead.pace(summary.seconds))
            say(f"[{i}/{len(plan)}] {p.stem} (profile {profile}) ...{' ' + note if note else ''}")
            t0 = time.perf_counter()
            out = run_notebook(p, params, executed / p.name, timeout, progress_bar=progress_bar, log_output=log_output,
                               report=progress, expected_cells=ahead.cells.get(p.stem))
            dt = time.perf_counter() - t0
            summary.notebooks.append(p.stem)
            summary.seconds[p.stem] = round(dt, 1)
            summary.outputs[p.stem] = str(out)
            summary.cells[p.stem] = cell_timings(out, at_least=LONG_CELL)
            say(f"[{i}/{len(plan)}] {p.stem} done in {dt:.1f} s")
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        save_timings(summary.profile, summary.run_id, summary.seconds, summary.cells)
    summary.report = write_report(profile)
    say(f"{len(summary.notebooks)} notebook(s) in {summary.total_seconds:.1f} s; report: {summary.report}")
    return summary


# ---------------------------------------------------------------------------------------------- report
def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


def _is_flat(v: Any) -> bool:
    """A non-empty dict of scalars (None, str, int, float, bool)."""
    return isinstance(v, dict) and bool(v) and all(x is None or isinstance(x, (str, int, float, bool)) for x in v.values())


def _as_table(value: Any) -> list[str] | None:
    """Markdown rows for a dict of flat dicts (rows keyed by name) or a list of flat dicts, else None."""
    if isinstance(value, dict) and value and all(map(_is_flat, value.values())):
        rows = [{"": k, **v} for k, v in value.items()]
    elif isinstance(value, list) and value and all(map(_is_flat, value)):
        rows = value
    elif _is_flat(value) and len(value) > 1:
        rows = [{"": k, "value": v} for k, v in value.items()]
    else:
        return None
    cols = list(dict.fromkeys(c for r in rows for c in r))
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(c)).strip('"').replace("|", "/") if c in r else "" for c in cols) + " |")
    return out


def write_report(profile: str) -> Path:
    """Write ``artifacts/<profile>/REPORT.md`` from every notebook's records, timings and figures."""
    base = artifacts_dir(profile)
    timings = read_timings(profile)["notebooks"]
    lines = [f"# Report: profile `{profile}`", "", f"_{get_profile(profile).description}_", ""]
    if timings:
        lines += ["| notebook | seconds | longest cell |", "|---|---|---|"]
        for nb, row in sorted(timings.items()):
            longest = max(row["long_cells"], key=lambda c: c["seconds"], default=None)
            note = f"cell {longest['cell']}: {longest['seconds']:.0f} s" if longest else ""
            lines.append(f"| {nb} | {row['seconds']:.1f} | {note} |")
        lines += [f"| **total** | **{sum(r['seconds'] for r in timings.values()):.1f}** | |", ""]
    for path in sorted((base / "metrics").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        figures = data.pop("_figures", {})
        lines += [f"## {path.stem}", ""]
        tables = {k: t for k, v in data.items() if (t := _as_table(v)) is not None}
        scalars = {k: v for k, v in data.items() if k not in tables}
        if scalars:
            lines += ["| record | value |", "|---|---|"]
            lines += [f"| {k} | {_fmt(v).replace('|', '/')} |" for k, v in scalars.items()]
            lines.append("")
        for k, table in tables.items():
            lines += [f"**{k}**", "", *table, ""]
        for name, rel in figures.items():
            lines += [f"![{name}]({rel})", ""]
    report = base / "REPORT.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report
