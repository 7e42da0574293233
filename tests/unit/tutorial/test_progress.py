"""Progress of a headless run (issue 15): the running cell reported while it runs, long cells timed, a hung cell
stopped by the per-cell limit with its name, timings.json per notebook and per long cell, and the next run's forecast."""

from __future__ import annotations

import json

import pytest

from rerank_utils.tutorial import runner
from rerank_utils.tutorial.progress import CellWatcher, cell_timings, running_cell
from rerank_utils.tutorial.runner import NotebookRunError, run_notebook, run_notebooks
from rerank_utils.tutorial.timings import duration, read_timings, run_when, timings_markdown
from tests.unit.tutorial.test_runner import COMMON, make_notebook


def test_a_slow_cell_is_reported_while_it_runs_and_timed(tmp_path):
    path = make_notebook(tmp_path / "00_slow.ipynb", "import time\ntime.sleep(4)  # a long training cell")
    out = tmp_path / "out" / "00_slow.ipynb"
    messages = []
    with CellWatcher(out, "00_slow", messages.append, every=1.0, slow_after=1.0, poll=0.3) as watcher:
        run_notebook(path, {"profile": "smoke"}, out, cell_timeout=60)
    assert watcher.reports >= 1 and messages, "the running cell was never reported"
    assert all(m.startswith("  00_slow: cell 4/4 running for ") and m.endswith(": import time") for m in messages), messages
    seconds = [int(m.split("running for ")[1].split(" s")[0]) for m in messages]
    assert seconds == sorted(seconds) and seconds[0] >= 1  # its age grows, reported once it passed slow_after
    timed = cell_timings(out, at_least=3.0)
    assert [(c["cell"], c["source"]) for c in timed] == [(4, "import time")] and 3.5 <= timed[0]["seconds"] < 30
    assert running_cell(out) is None  # finished: nothing runs


def test_a_hung_cell_stops_the_run_naming_the_cell_and_the_limit(tmp_path, _artifacts_in_tmp):
    path = make_notebook(tmp_path / "00_hangs.ipynb", "import time\nwhile True:\n    time.sleep(0.1)")
    with pytest.raises(NotebookRunError) as err:
        run_notebook(path, {"profile": "smoke"}, tmp_path / "out" / "00_hangs.ipynb", cell_timeout=3)
    msg = str(err.value)
    assert "00_hangs.ipynb could not run in cell 4/4" in msg and "import time" in msg
    assert "the per-cell limit is 3 s (--cell-timeout raises it)" in msg


def test_timings_json_per_notebook_and_long_cell_and_run(tmp_path, _artifacts_in_tmp, monkeypatch):
    monkeypatch.setattr(runner, "LONG_CELL", 2.0)  # runner reads it from timings at import  # the real thresholds, scaled down: 10 s to list a cell, 30 s to report it
    monkeypatch.setattr(runner, "SLOW_CELL", 1.0)
    monkeypatch.setattr(runner, "REPORT_EVERY", 1.0)
    folder = tmp_path / "nbs"
    folder.mkdir()
    make_notebook(folder / "00_quick.ipynb", "x = 1")
    make_notebook(folder / "01_long.ipynb", "import time\ntime.sleep(3)")
    messages = []
    summary = run_notebooks("smoke", folder=folder, progress=messages.append)
    timings = read_timings("smoke")
    assert set(timings["notebooks"]) == {"00_quick", "01_long"}
    long = timings["notebooks"]["01_long"]
    assert long["run"] == summary.run_id and [c["cell"] for c in long["long_cells"]] == [4] and long["long_cells"][0]["seconds"] >= 2.5
    assert timings["notebooks"]["00_quick"]["long_cells"] == []
    assert timings["runs"][summary.run_id]["notebooks"] == ["00_quick", "01_long"] and timings["runs"][summary.run_id]["machine"]["cpus"] >= 1
    assert any(m.startswith("  01_long: cell 4/4 running for ") for m in messages)  # run-notebooks reports it
    report = (_artifacts_in_tmp / "smoke" / "REPORT.md").read_text()
    assert "| 01_long |" in report and "cell 4: 3 s" in report
    table = timings_markdown("smoke")
    assert "| 01_long | " in table and " s: `import time` |" in table and f"One run ({summary.run_id})" in table
    # a later partial run replaces only its notebook, under its own run id
    make_notebook(folder / "00_quick.ipynb", "x = 2")
    again = run_notebooks("smoke", folder=folder, only=["00"], progress=None)
    timings = read_timings("smoke")
    assert timings["notebooks"]["00_quick"]["run"] == again.run_id != summary.run_id and timings["notebooks"]["01_long"]["run"] == summary.run_id
    assert json.loads((_artifacts_in_tmp / "smoke" / "timings.json").read_text()) == timings
    assert f"Stitched from 2 runs ({min(summary.run_id, again.run_id)}" in timings_markdown("smoke")
    # the next run forecasts from those: each notebook's time, the time left, and the slow cell's time before
    before = timings["notebooks"]
    forecasted = []
    third = run_notebooks("smoke", folder=folder, progress=forecasted.append)
    runs = dict.fromkeys(f"this machine's run of {run_when(run)}" for run in (again.run_id, summary.run_id))  # same minute: once
    assert forecasted[0] == f"forecast: {'; '.join(runs)}"
    total = duration(before["00_quick"]["seconds"] + before["01_long"]["seconds"])
    assert forecasted[1] == f"[1/2] 00_quick (profile smoke) ... about {duration(before['00_quick']['seconds'])}; about {total} left in all"
    # the last: no total, and its forecast scaled by this run's pace on 00_quick
    paced = f"[2/2] 01_long (profile smoke) ... about {duration(third.seconds['00_quick'] / before['00_quick']['seconds'] * before['01_long']['seconds'])}"
    assert any(m == paced or m.startswith(f"{paced} (this run so far: ") for m in forecasted), forecasted
    expected = f"(about {before['01_long']['long_cells'][0]['seconds']:.0f} s expected): import time"
    assert any(m.startswith("  01_long: cell 4/4 running for ") and m.endswith(expected) for m in forecasted), forecasted


def test_an_old_flat_timings_file_is_replaced(_artifacts_in_tmp, tmp_path):
    (_artifacts_in_tmp / "smoke").mkdir(parents=True, exist_ok=True)
    (_artifacts_in_tmp / "smoke" / "timings.json").write_text(json.dumps({"00_old": 12.0}))
    assert read_timings("smoke") == {"notebooks": {}, "runs": {}}
    folder = tmp_path / "nbs"
    folder.mkdir()
    make_notebook(folder / "00_new.ipynb", "pass", params=COMMON)
    run_notebooks("smoke", folder=folder, progress=None)
    assert set(read_timings("smoke")["notebooks"]) == {"00_new"}
