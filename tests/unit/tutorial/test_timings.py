"""The README's timings come from ONE whole run per profile: ``timings.py --update-readme`` writes the notebook
table's "smoke / cpu" column and the totals block of both READMEs, and refuses a stitched profile."""

from __future__ import annotations

import json

import pytest

from rerank_utils.paths import repo_root
from rerank_utils.tutorial import timings
from rerank_utils.tutorial.timings import NotOneRun, duration, one_run, readme_with_timings, update_readme

README = """# x

| # | notebook | what | CPU time smoke / cpu | needs |
|---|---|---|---|---|
| 00 | [concepts](a) | the pipeline | 44 s / 94 s | — |
| 01 | [data](b) | formats | 6 s / 5 s | — |
| — | [_template](c) | shape | | |

<!-- timings: begin (python -m rerank_utils.tutorial.timings --update-readme) -->
<!-- cpu -->old cpu sentence
<!-- smoke -->old smoke sentence
<!-- timings: end -->
after
"""


def _timings(run: str, seconds: dict[str, float], other_run: str | None = None) -> dict:
    notebooks = {nb: {"seconds": s, "run": run, "long_cells": []} for nb, s in seconds.items()}
    if other_run:
        notebooks[next(iter(notebooks))]["run"] = other_run
    return {"notebooks": notebooks,
            "runs": {run: {"machine": {"cpus": 2, "processor": "Test CPU (AVX2)"}, "notebooks": list(seconds)}}}


def test_duration_is_seconds_under_100_then_minutes_and_a_run_is_named_by_its_time():
    assert (duration(44.4), duration(99.4), duration(306.0)) == ("44 s", "99 s", "5.1 min")
    assert timings.run_when("2026-12-04T18:46:38.952+00:00") == "2026-12-04 18:46 UTC" and timings.run_when("c1") == "c1"


def test_one_run_refuses_a_stitched_profile_and_an_empty_one():
    assert one_run("cpu", _timings("r1", {"00_a": 1.0, "01_b": 2.0}))[0] == "r1"
    with pytest.raises(NotOneRun, match=r"stitched from 2 runs \(r0, r1\).*make tutorial PROFILE=cpu"):
        one_run("cpu", _timings("r1", {"00_a": 1.0, "01_b": 2.0}, other_run="r0"))
    with pytest.raises(NotOneRun, match="no timings for profile 'cpu'"):
        one_run("cpu", {"notebooks": {}, "runs": {}})


def test_readme_column_and_totals_rewritten_from_one_run_each():
    cpu = _timings("2026-12-04T18:00", {"00_concepts": 98.1, "01_data_preparation": 9.0})
    smoke = _timings("2026-12-04T19:00", {"00_concepts": 41.0, "01_data_preparation": 12.0})
    out = readme_with_timings(README, {"smoke": smoke, "cpu": cpu})
    assert "| 00 | [concepts](a) | the pipeline | 41 s / 98 s | — |" in out
    assert "| 01 | [data](b) | formats | 12 s / 9 s | — |" in out
    assert "| — | [_template](c) | shape | | |" in out  # not a notebook row: untouched
    assert ("<!-- cpu -->One whole `cpu` run (2026-12-04 18:00, 2 notebooks, on 2 CPUs, Test CPU (AVX2)): "
            "**1.8 min** (107 s of notebooks).") in out
    assert "old cpu sentence" not in out and "old smoke sentence" not in out and out.endswith("after\n")
    # only cpu given: smoke's column and sentence are kept as they were
    only_cpu = readme_with_timings(README, {"cpu": cpu})
    assert "| 00 | [concepts](a) | the pipeline | 44 s / 98 s | — |" in only_cpu and "old smoke sentence" in only_cpu
    assert readme_with_timings(only_cpu, {"cpu": cpu}) == only_cpu  # idempotent


def test_readme_refuses_stitched_timings_and_a_missing_block():
    stitched = _timings("r1", {"00_concepts": 1.0, "01_data_preparation": 2.0}, other_run="r0")
    with pytest.raises(NotOneRun):
        readme_with_timings(README, {"cpu": stitched})
    with pytest.raises(ValueError, match="no `<!-- timings: begin -->`"):
        readme_with_timings("| 00 | a | b | 1 s / 2 s | — |\n", {"cpu": _timings("r", {"00_a": 1.0})})


def test_update_readme_reads_timings_json_and_the_command_exits_2_on_a_stitch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RERANK_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    for profile, run in (("smoke", "s1"), ("cpu", "c1")):
        (tmp_path / "artifacts" / profile).mkdir(parents=True)
        (tmp_path / "artifacts" / profile / "timings.json").write_text(
            json.dumps(_timings(run, {"00_concepts": 120.0, "01_data_preparation": 3.0})))
    en, zh = tmp_path / "README.md", tmp_path / "README.zh-CN.md"
    en.write_text(README)
    zh.write_text(README)
    two = ["00_concepts", "01_data_preparation"]
    update_readme([en, zh], notebooks=two)
    assert "| 00 | [concepts](a) | the pipeline | 2.0 min / 2.0 min | — |" in en.read_text()
    assert "One whole `cpu` run (c1" in en.read_text() and "`cpu` profile 的一次完整运行（c1" in zh.read_text()
    (tmp_path / "artifacts" / "cpu" / "timings.json").write_text(
        json.dumps(_timings("c2", {"00_concepts": 1.0, "01_data_preparation": 3.0}, other_run="c1")))
    monkeypatch.setattr(timings, "update_readme", lambda **kw: update_readme([en, zh], notebooks=two, **kw))
    assert timings.main(["--update-readme"]) == 2
    assert "stitched from 2 runs (c1, c2)" in capsys.readouterr().out
    # --profile smoke writes the smoke figures alone: the stitched cpu profile is neither read nor refused
    (tmp_path / "artifacts" / "smoke" / "timings.json").write_text(
        json.dumps(_timings("s2", {"00_concepts": 30.0, "01_data_preparation": 3.0})))
    assert timings.main(["--update-readme", "--profile", "smoke"]) == 0
    assert "| 00 | [concepts](a) | the pipeline | 30 s / 2.0 min | — |" in en.read_text() and "One whole `cpu` run (c1" in en.read_text()


def test_a_run_of_some_notebooks_is_not_a_whole_run():
    only_03 = _timings("r1", {"03_fine_tuning": 1187.0})
    with pytest.raises(NotOneRun, match=r"run r1 timed 1 of 3 notebooks \(missing: 00_concepts, 01_data\).*make tutorial PROFILE=cpu"):
        one_run("cpu", only_03, ["00_concepts", "01_data", "03_fine_tuning"])
    assert one_run("cpu", only_03, ["03_fine_tuning"])[0] == "r1"


def test_update_readme_checks_against_the_repositorys_notebooks(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    (tmp_path / "artifacts" / "smoke").mkdir(parents=True)
    (tmp_path / "artifacts" / "smoke" / "timings.json").write_text(json.dumps(_timings("s1", {"00_concepts": 30.0})))
    readme = tmp_path / "README.md"
    readme.write_text(README)
    with pytest.raises(NotOneRun, match=r"run s1 timed 1 of 11 notebooks \(missing: 01_data_preparation, .*14_bridge_reranker\)"):
        update_readme([readme], profiles=("smoke",))
    assert readme.read_text() == README  # nothing written


def test_every_readme_carries_the_timings_block_and_the_same_times():
    root = repo_root()
    times = {}
    for name in ("README.md", "README.zh-CN.md", "notebooks/README.md"):
        text = (root / name).read_text(encoding="utf-8")
        assert timings.BLOCK.search(text), name
        rows = [timings.TABLE_ROW.match(line) for line in text.splitlines() if timings.TABLE_ROW.match(line)]
        assert len(rows) == 11, (name, len(rows))  # every numbered notebook's row is one the script rewrites
        times[name] = {m.group(1): m.group(3) for m in rows}
    # the script writes all three (update_readme's default paths): none was edited by hand apart from the others
    assert times["README.md"] == times["README.zh-CN.md"] == times["notebooks/README.md"]
    english = [timings.BLOCK.search((root / name).read_text(encoding="utf-8")).group(2) for name in ("README.md", "notebooks/README.md")]
    assert english[0] == english[1]
