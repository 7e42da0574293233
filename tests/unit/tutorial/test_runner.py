"""The papermill runner on tiny notebooks the test writes: order, parameters, failures, records, report."""

from __future__ import annotations

import json
import os
import tempfile
import time

import nbformat
import pytest

from rerank_utils.cli.main import main
from rerank_utils.paths import ENV_EMBEDDING_CACHE, ENV_SCORE_CACHE, discover_notebooks
from rerank_utils.tutorial.profiles import COMMON_PARAMETERS, PROFILES
from rerank_utils.tutorial.records import (
    Recorder,
    read_records,
    record,
    start_recording,
)
from rerank_utils.tutorial.runner import (
    NotebookParameterError,
    NotebookRunError,
    UnixSocketKernelManager,
    check_parameters,
    kernel_manager_options,
    run_notebooks,
    select_notebooks,
    write_report,
)

COMMON = "\n".join(f"{name} = None" for name in COMMON_PARAMETERS)


def make_notebook(path, body: str, params: str = COMMON, tag: bool = True):
    nb = nbformat.v4.new_notebook()
    pcell = nbformat.v4.new_code_cell(params)
    if tag:
        pcell.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# test"),
        pcell,
        nbformat.v4.new_code_cell("from rerank_utils.tutorial.records import start_recording, record\n"
                                  f"rec = start_recording({path.stem!r}, profile)"),
        nbformat.v4.new_code_cell(body),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def nb_dir(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    return folder


def test_discover_and_select(nb_dir):
    for name in ("01_b", "00_a", "10_c", "_template"):
        make_notebook(nb_dir / f"{name}.ipynb", "pass")
    found = discover_notebooks(nb_dir)
    assert [p.stem for p in found] == ["00_a", "01_b", "10_c"]  # number order, template excluded
    assert [p.stem for p in select_notebooks(found, only=["1", "00_a"])] == ["00_a", "01_b"]
    assert [p.stem for p in select_notebooks(found, start="01", end="10")] == ["01_b", "10_c"]
    with pytest.raises(ValueError, match="no notebook matches '07'; available: 00_a, 01_b, 10_c"):
        select_notebooks(found, only=["07"])


def test_run_in_order_records_and_report(nb_dir, _artifacts_in_tmp, monkeypatch):
    monkeypatch.delenv(ENV_EMBEDDING_CACHE, raising=False)
    monkeypatch.delenv(ENV_SCORE_CACHE, raising=False)
    make_notebook(nb_dir / "00_first.ipynb", "import os\nrecord('cwd', os.getcwd())\nrecord('max_queries', max_queries)\n"
                  f"record('embedding_cache', os.environ.get({ENV_EMBEDDING_CACHE!r}))\n"
                  f"record('score_cache', os.environ.get({ENV_SCORE_CACHE!r}))\n"
                  "import numpy as np\nrecord('ndcg', np.float32(0.5))")
    make_notebook(nb_dir / "01_second.ipynb",
                  "from rerank_utils.tutorial.records import read_records\nprev = read_records(profile, '00_first')\n"
                  "record('saw_previous', prev['ndcg'])\n"
                  "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(); ax.plot([1, 2])\nrec.figure(fig, 'line')")
    messages = []
    summary = run_notebooks("smoke", folder=nb_dir, progress=messages.append)
    assert summary.notebooks == ["00_first", "01_second"]
    assert messages[0].startswith("[1/2] 00_first") and any("01_second done in" in m for m in messages)
    first = read_records("smoke", "00_first")
    assert first["cwd"] == str(nb_dir)  # cwd = the notebooks' folder
    assert first["max_queries"] == PROFILES["smoke"].common["max_queries"]  # the profile's value was injected
    assert first["ndcg"] == 0.5
    assert first["embedding_cache"] == str(_artifacts_in_tmp / "smoke" / "cache" / "embeddings")  # one cache for the run's kernels
    assert first["score_cache"] == str(_artifacts_in_tmp / "smoke" / "cache" / "scores")  # and one score memo
    assert ENV_EMBEDDING_CACHE not in os.environ and ENV_SCORE_CACHE not in os.environ  # the caller's environment as it was
    second = read_records("smoke", "01_second")
    assert second["saw_previous"] == 0.5
    assert (_artifacts_in_tmp / "smoke" / second["_figures"]["line"]).is_file()
    executed = _artifacts_in_tmp / "smoke" / "executed" / "00_first.ipynb"
    assert executed.is_file()
    report = (_artifacts_in_tmp / "smoke" / "REPORT.md").read_text()
    assert "## 00_first" in report and "| ndcg | 0.5000 |" in report and "![line](figures/01_second__line.png)" in report
    assert "| **total** |" in report


def test_undeclared_parameter_is_an_error_before_anything_runs(nb_dir, _artifacts_in_tmp):
    make_notebook(nb_dir / "00_ok.ipynb", "record('ran', True)")
    declared = "\n".join(f"{n} = None" for n in COMMON_PARAMETERS if n != "max_queries")
    make_notebook(nb_dir / "01_lacks.ipynb", "pass", params=declared)
    with pytest.raises(NotebookParameterError, match="01_lacks.ipynb does not declare parameter\\(s\\) max_queries"):
        run_notebooks("smoke", folder=nb_dir, progress=None)
    assert not (_artifacts_in_tmp / "smoke" / "metrics" / "00_ok.json").exists()  # checked before running


def test_missing_parameters_tag_is_an_error(nb_dir):
    path = make_notebook(nb_dir / "00_untagged.ipynb", "pass", tag=False)
    with pytest.raises(NotebookParameterError, match="0 cells are tagged 'parameters'"):
        check_parameters(path, {"profile": "smoke"})


def test_failing_notebook_stops_the_run_naming_notebook_cell_and_error(nb_dir, _artifacts_in_tmp, capsys):
    make_notebook(nb_dir / "00_fails.ipynb", "x = 1\nraise KeyError('no such column: passage')")
    make_notebook(nb_dir / "01_never.ipynb", "record('ran', True)")
    with pytest.raises(NotebookRunError) as err:
        run_notebooks("smoke", folder=nb_dir, progress=None)
    msg = str(err.value)
    assert "00_fails.ipynb failed in cell" in msg and "KeyError" in msg and "no such column: passage" in msg
    assert "cell starts with: x = 1" in msg
    assert not (_artifacts_in_tmp / "smoke" / "metrics" / "01_never.json").exists()
    # the command line exits non-zero with the same message
    assert main(["run-notebooks", "--profile", "smoke", "--notebooks-dir", str(nb_dir)]) == 1
    assert "00_fails.ipynb failed in cell" in capsys.readouterr().err


def _alive(pid: int, within: float = 10.0) -> bool:
    """Whether the process still exists, not as a zombie (a container's init may never reap it), ``within`` seconds
    from now: a SIGKILL is delivered at once, but nothing waits for the child's death on a busy machine."""
    deadline = time.monotonic() + within
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                alive = f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            alive = False
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads processes from /proc (Linux)")
def test_the_kernel_goes_with_what_it_started_and_everything_it_wrote_stays(nb_dir, _artifacts_in_tmp):
    starts = "import subprocess, sys\nchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    make_notebook(nb_dir / "00_leaves_a_child.ipynb", starts + "record('child', child.pid)\nrecord('rows', list(range(50_000)))")
    make_notebook(nb_dir / "01_fails_with_a_child.ipynb", starts + "record('child', child.pid)\nraise RuntimeError('boom')")
    run_notebooks("smoke", folder=nb_dir, only=["00"], progress=None)
    first = read_records("smoke", "00_leaves_a_child")
    assert first["rows"] == list(range(50_000))  # written by the last cell, whole
    with pytest.raises(NotebookRunError, match="boom"):
        run_notebooks("smoke", folder=nb_dir, only=["01"], progress=None)
    second = read_records("smoke", "01_fails_with_a_child")
    # the kernel is killed at once (no graceful teardown), and a process it started and did not stop goes with it
    assert not _alive(first["child"]) and not _alive(second["child"])


@pytest.mark.skipif(os.name != "posix", reason="Unix sockets; elsewhere the kernel keeps papermill's TCP")
def test_the_kernel_talks_over_unix_sockets_that_go_with_it_and_prints_no_tcp_warning(nb_dir, _artifacts_in_tmp, capfd):
    make_notebook(nb_dir / "00_where.ipynb", "from ipykernel import get_connection_info\nrecord('connection', {k: v for k, v in get_connection_info(unpack=True).items() if k != 'key'})")
    run_notebooks("smoke", folder=nb_dir, progress=None)
    connection = read_records("smoke", "00_where")["connection"]
    assert connection["transport"] == "ipc" and os.path.isabs(connection["ip"])  # not relative to the notebooks' folder
    ports = [connection[k] for k in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")]
    assert not any(os.path.exists(f"{connection['ip']}-{port}") for port in ports)  # the socket files went with the kernel
    assert sorted(p.name for p in nb_dir.iterdir()) == ["00_where.ipynb"]
    assert "without encryption" not in capfd.readouterr().err  # ipykernel's warning about a TCP kernel


def test_a_temporary_folder_too_long_for_a_socket_name_keeps_tcp(monkeypatch, tmp_path):
    assert kernel_manager_options() == ({"kernel_manager_class": UnixSocketKernelManager} if os.name == "posix" else {})
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / ("x" * 120)))
    assert kernel_manager_options() == {}


def test_recorder_rejects_values_it_cannot_store(_artifacts_in_tmp):
    rec = Recorder("00_x", "smoke")
    rec.record("nan_becomes_null", float("nan"))
    with pytest.raises(TypeError, match="cannot store a value of type object"):
        rec.record("bad", object())
    data = json.loads(rec.path.read_text())
    assert data == {"nan_becomes_null": None}
    assert "00_x" in write_report("smoke").read_text()


def test_record_needs_a_started_recorder_and_a_name(_artifacts_in_tmp, monkeypatch):
    from rerank_utils.tutorial import records as records_module

    monkeypatch.setattr(records_module, "_CURRENT", None)
    with pytest.raises(RuntimeError, match="record\\(\\) before start_recording"):
        record("x", 1)
    rec = start_recording("00_y", "smoke")
    with pytest.raises(ValueError, match="non-empty string"):
        rec.record("", 1)
    record("x", 1)
    assert read_records("smoke", "00_y") == {"x": 1}
