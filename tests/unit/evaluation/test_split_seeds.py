"""Claims over several split seeds (rerank_utils.evaluation.split_seeds)."""

from __future__ import annotations

import json

import pytest

from rerank_utils.evaluation.split_seeds import (
    interval_rows,
    load_seed_results,
    markdown,
    seed_rows,
)

DATA = {
    "43": {"test": {"ft": {"ndcg@10": 0.80}, "ft + r": 0.79}, "intervals": {"ft + r vs ft": [-0.01, -0.04, 0.02], "ft vs base": [0.05, 0.01, 0.09]}},
    "42": {"test": {"ft": {"ndcg@10": 0.82}, "ft + r": 0.83}, "intervals": {"ft + r vs ft": [0.01, -0.02, 0.04], "ft vs base": [0.08, 0.04, 0.12]}},
    "44": {"test": {"ft": {"ndcg@10": 0.78}}, "intervals": {"ft vs base": [-0.03, -0.06, -0.005]}},
}


def test_seed_rows_average_each_pipeline_over_the_seeds_it_ran_on():
    rows = {r["pipeline"]: r for r in seed_rows(DATA)}
    assert list(rows["ft"])[:4] == ["pipeline", "seed 42", "seed 43", "seed 44"]  # seeds in numeric order
    assert rows["ft"]["mean"] == pytest.approx(0.80) and rows["ft"]["seeds"] == 3
    assert rows["ft + r"]["mean"] == pytest.approx(0.81) and rows["ft + r"]["seeds"] == 2


def test_interval_rows_count_where_each_seeds_interval_lies():
    rows = {r["comparison"]: r for r in interval_rows(DATA)}
    base = rows["ft vs base"]
    assert base["seed 42"] == "+0.080 [+0.040, +0.120]" and base["mean diff"] == pytest.approx(0.1 / 3)
    assert (base["min diff"], base["max diff"]) == (-0.03, 0.08)
    assert (base["above zero"], base["contain zero"], base["below zero"]) == (2, 0, 1)
    assert rows["ft + r vs ft"]["contain zero"] == 2 and rows["ft + r vs ft"]["seeds"] == 2
    table = markdown(interval_rows(DATA))
    assert table.splitlines()[0].startswith("| comparison | seed 42 | seed 43 | mean diff") and "| +0.033 |" in table


def test_missing_or_malformed_results_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="retriever_vs_reranker.py --seeds"):
        load_seed_results(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json: not JSON"):
        load_seed_results(bad)
    bad.write_text(json.dumps({"42": {"test": {}}}), encoding="utf-8")
    with pytest.raises(ValueError, match="seed 42 has no 'intervals'"):
        load_seed_results(bad)
    assert load_seed_results()  # the repository's committed results load


def test_the_seed_benchmark_command_saves_each_seed_and_skips_saved_ones(tmp_path, capsys):
    from rerank_utils.evaluation.split_seeds import seed_benchmark_main

    out, ran = tmp_path / "r.json", []

    def run_seed(seed, workdir):
        ran.append((seed, workdir.name))
        return {"test": {"x": 0.5 + seed / 100}, "intervals": {"x vs y": [0.01, -0.01, 0.03]}}

    def table(done):
        return f"{len(done)} seeds"

    seed_benchmark_main("d", out, run_seed, table, str(tmp_path / "w"), ["--seeds", "1", "2"])
    assert ran == [(1, "seed1"), (2, "seed2")] and set(json.loads(out.read_text())) == {"1", "2"}
    seed_benchmark_main("d", out, run_seed, table, str(tmp_path / "w"), ["--seeds", "2", "3"])
    assert ran[2:] == [(3, "seed3")] and "seed 2: saved, skipped" in capsys.readouterr().out
    seed_benchmark_main("d", out, run_seed, table, str(tmp_path / "w"), ["--seeds", "2", "--force"])
    assert ran[3:] == [(2, "seed2")]
    seed_benchmark_main("d", out, run_seed, table, str(tmp_path / "w"), ["--table"])
    assert len(ran) == 4 and capsys.readouterr().out.strip().endswith("3 seeds")
