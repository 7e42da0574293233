"""The forecast ``run-notebooks`` prints (issue 15: "roughly how long is left"): this machine's last times first, the
READMEs' run where it has none; the reference file written with the READMEs from the same run, and kept equal to them."""

from __future__ import annotations

import json

import pytest

from rerank_utils.paths import repo_root
from rerank_utils.tutorial import timings
from rerank_utils.tutorial.estimates import Forecast, forecast
from rerank_utils.tutorial.timings import duration, machine, read_reference, run_when, update_readme, write_reference
from tests.unit.tutorial.test_timings import README, _timings


def _with_cells(data: dict, notebook: str, cells: list[dict]) -> dict:
    data["notebooks"][notebook]["long_cells"] = cells
    return data


def test_this_machines_times_come_first_the_readmes_fill_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    reference = tmp_path / "reference.json"
    monkeypatch.setattr(timings, "REFERENCE", reference)
    assert forecast("smoke").notebook("00_a", ["01_b"]) == ""  # nothing known: no forecast, and no error
    published = _with_cells(_timings("2026-12-06T10:00:00+00:00", {"00_a": 100.0, "01_b": 50.0, "02_c": 7.0}), "00_a",
                            [{"cell": 3, "seconds": 60.0, "source": "train()"}])
    write_reference({"smoke": published}, reference)
    (tmp_path / "artifacts" / "smoke").mkdir(parents=True, exist_ok=True)
    (tmp_path / "artifacts" / "smoke" / "timings.json").write_text(json.dumps(_timings("2026-12-07T08:30:00+00:00", {"01_b": 20.0})))
    ahead = forecast("smoke")
    assert ahead.seconds == {"00_a": 100.0, "01_b": 20.0, "02_c": 7.0} and ahead.cells["00_a"] == {3: 60.0}
    assert ahead.notebook("00_a", ["01_b", "02_c"]) == "about 1.7 min; about 2.1 min left in all"  # 100 + 20 + 7 s
    assert ahead.notebook("02_c", []) == "about 7 s"
    assert ahead.notebook("01_b", ["02_c", "03_new"]) == "about 20 s"  # a notebook without a forecast: no total
    assert ahead.notebook("03_new", []) == ""
    # the artifacts' run was timed on another processor than this one (a folder copied from elsewhere): named as such
    assert ahead.sources(["00_a", "01_b", "02_c"]) == ("the READMEs' run of 2026-12-06 10:00 UTC on 2 CPUs, Test CPU (AVX2); "
                                                      "the run of 2026-12-07 08:30 UTC on 2 CPUs, Test CPU (AVX2)")
    here = _timings("2026-12-07T09:00:00+00:00", {"01_b": 21.0})
    here["runs"]["2026-12-07T09:00:00+00:00"]["machine"] = machine()
    (tmp_path / "artifacts" / "smoke" / "timings.json").write_text(json.dumps(here))
    assert forecast("smoke").source["01_b"] == "this machine's run of 2026-12-07 09:00 UTC"
    assert forecast("cpu").seconds == {}  # another profile's runs are not this one's


def test_the_time_left_follows_this_runs_pace_once_notebooks_have_finished():
    """A slower CPU or a second CPU-heavy job: after the first notebooks the time left is this run's, not the record's."""
    ahead = Forecast(seconds={"00_a": 100.0, "01_b": 5.0, "02_c": 300.0, "03_d": 60.0})
    assert ahead.pace({}) == 1.0 and ahead.pace({"99_new": 40.0}) == 1.0  # nothing finished that has a forecast
    pace = ahead.pace({"00_a": 150.0, "01_b": 4.5, "99_new": 40.0})  # (150 + 4.5) / (100 + 5): the long notebook weighs most
    assert pace == pytest.approx(154.5 / 105)
    assert ahead.notebook("02_c", ["03_d"], pace=pace) == (f"about {duration(300 * pace)}; about {duration(360 * pace)} left in all "
                                                           f"(this run so far: {pace:.2f}x the forecast)")
    assert ahead.notebook("02_c", ["03_d"], pace=1.05) == "about 5.2 min; about 6.3 min left in all"  # within 10 %: not said
    assert ahead.notebook("02_c", ["03_d"]) == "about 5.0 min; about 6.0 min left in all"


def test_update_readme_writes_the_reference_from_the_same_run_and_keeps_the_other_profiles(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    two = ["00_concepts", "01_data_preparation"]
    for profile, run in (("smoke", "s1"), ("cpu", "c1")):
        (tmp_path / "artifacts" / profile).mkdir(parents=True)
        data = _with_cells(_timings(run, {"00_concepts": 120.0, "01_data_preparation": 3.0}), "00_concepts",
                           [{"cell": 5, "seconds": 80.0, "source": "x = 1"}])
        (tmp_path / "artifacts" / profile / "timings.json").write_text(json.dumps(data))
    readme, reference = tmp_path / "README.md", tmp_path / "reference.json"
    readme.write_text(README)
    update_readme([readme], notebooks=two, reference=reference)
    written = read_reference(reference)
    assert set(written) == {"smoke", "cpu"} and written["cpu"]["run"] == "c1"
    assert written["cpu"]["notebooks"]["00_concepts"] == {"seconds": 120.0, "long_cells": [{"cell": 5, "seconds": 80.0, "source": "x = 1"}]}
    assert written["cpu"]["machine"]["processor"] == "Test CPU (AVX2)"
    (tmp_path / "artifacts" / "smoke" / "timings.json").write_text(
        json.dumps(_timings("s2", {"00_concepts": 30.0, "01_data_preparation": 3.0})))
    update_readme([readme], profiles=("smoke",), notebooks=two, reference=reference)
    again = read_reference(reference)
    assert again["smoke"]["run"] == "s2" and again["cpu"] == written["cpu"]
    update_readme([readme], profiles=("smoke",), notebooks=two)  # README paths of one's own: no reference unless asked
    assert read_reference(reference) == again


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_the_packaged_reference_is_the_readmes_run(profile):
    """The forecast a new user sees is the READMEs' figure: each notebook's time and the run's date, as the table says."""
    reference = read_reference()[profile]
    text = (repo_root() / "README.md").read_text(encoding="utf-8")
    column = {m.group(1): m.group(3) for line in text.splitlines() if (m := timings.TABLE_ROW.match(line))}
    published = {nb: part.strip() for nb, cell in column.items() for part in [cell.split("/")[0 if profile == "smoke" else 1]]}
    assert {nb[:2]: duration(row["seconds"]) for nb, row in reference["notebooks"].items()} == published
    block = timings.BLOCK.search(text).group(2)
    assert f"One whole `{profile}` run ({run_when(reference['run'])}, " in block
