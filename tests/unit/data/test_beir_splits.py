"""A BEIR folder that publishes its own qrels/train.tsv, dev.tsv and test.tsv keeps those splits (read together,
each query tagged with its file), re-splitting is a choice (`resplit`), a folder without train.tsv is re-split
with a notice, and how the split was made is recorded; through `prepare_splits` (the notebooks' `data_source`)
and the CLI's prepare / finetune / evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerank_utils.data.beir import read_beir, write_beir
from rerank_utils.data.records import RetrievalDataset, data_fingerprint
from rerank_utils.data.saved_splits import prepare_splits, splits_dir
from rerank_utils.data.sources import build_dataset
from rerank_utils.data.splits import make_splits, published_splits

WORDS = "roof tax permit house wall door water heat light floor stair window garden fence street court".split()


def beir_folder(folder: Path, sizes=(("train", 21), ("dev", 3), ("test", 6))) -> dict[str, list[str]]:
    """A folder whose queries i have one positive d{i} (distinct texts, so no two queries are linked) and a judged
    negative, the qrels files named by ``sizes``; returns each file's query ids."""
    n = sum(k for _, k in sizes)
    corpus = {f"d{i}": f"{WORDS[i % 16]} {WORDS[(i * 7) % 16]} answer {i}" for i in range(n + 1)}
    queries = {f"q{i}": f"{WORDS[(i * 3) % 16]} question {i}" for i in range(n)}
    ids, start = {}, 0
    for name, k in sizes:
        ids[name] = [f"q{i}" for i in range(start, start + k)]
        start += k
        qrels = {q: {f"d{q[1:]}": 1.0, f"d{n}": 0.0} for q in ids[name]}
        write_beir(RetrievalDataset(corpus, queries, qrels, name=folder.name), folder, split=name)
    return ids


def test_the_folders_own_splits_are_kept_and_said(tmp_path):
    ids = beir_folder(tmp_path / "mine")
    ds = build_dataset(tmp_path / "mine")
    assert len(ds) == 30 and {ds.query_meta[q]["beir_split"] for q in ds.queries} == {"train", "dev", "test"}
    assert ds.qrels["q0"] == {"d0": 1.0, "d30": 0.0}  # the judged negative of train.tsv is kept, not dropped
    lines = []
    splits, made = make_splits(ds, seed=1, log=lines.append)
    assert {name: sorted(s.queries) for name, s in splits.items()} == {"train": sorted(ids["train"]), "val": sorted(ids["dev"]), "test": sorted(ids["test"])}
    assert made == "the folder's own splits: train 21 queries (qrels/train.tsv), val 3 (its dev/val qrels), test 6 (qrels/test.tsv)"
    assert lines == [made + "; set resplit: true (notebook 01's `resplit`) to re-split instead"]
    again, made = make_splits(ds, seed=1, resplit=True, log=lines.append)
    assert sorted(len(s) for s in again.values()) == [3, 6, 21] and set(again["test"].queries) != set(ids["test"])
    assert made.startswith("re-split 70/10/20 (train/val/test) by query (resplit: true)")
    one, _ = read_beir(tmp_path / "mine", split="dev")
    assert sorted(one.queries) == sorted(ids["dev"]) and "beir_split" not in one.query_meta.get("q21", {})  # one split: as before


def test_without_dev_val_comes_from_train_and_test_stays_published(tmp_path):
    ids = beir_folder(tmp_path / "nodev", sizes=(("train", 24), ("test", 6)))
    splits, made = make_splits(build_dataset(tmp_path / "nodev"), log=lambda _: None)
    assert set(splits["test"].queries) == set(ids["test"])
    assert set(splits["train"].queries) | set(splits["val"].queries) == set(ids["train"]) and len(splits["val"]) == 3
    assert "it has no dev.tsv, so val is 3 of the 24 qrels/train.tsv queries, train the other 21" in made


def test_a_folder_with_only_test_is_resplit_with_a_notice(tmp_path):
    beir_folder(tmp_path / "onlytest", sizes=(("test", 30),))
    lines = []
    splits, made = make_splits(build_dataset(tmp_path / "onlytest"), log=lines.append)
    assert [len(s) for s in splits.values()] == [21, 3, 6]
    assert lines == [made] and "the folder publishes only test qrels (no qrels/train.tsv)" in made
    assert published_splits(RetrievalDataset({"d": "x"}, {"q": "y"}, {"q": {"d": 1}})) is None  # not from a BEIR folder


def test_a_query_in_two_published_splits_is_an_error_naming_both_files(tmp_path):
    beir_folder(tmp_path / "leaky")
    with open(tmp_path / "leaky" / "qrels" / "test.tsv", "a", encoding="utf-8") as f:
        f.write("q0\td1\t1\n")
    with pytest.raises(ValueError, match=r"queries \['q0'\] \(1 in all\) have judgements in qrels/train.tsv and qrels/test.tsv"):
        build_dataset(tmp_path / "leaky")


def test_prepare_splits_keeps_them_and_records_how(tmp_path):
    ids = beir_folder(tmp_path / "team")
    splits = prepare_splits("team", str(tmp_path / "team"), log=lambda _: None)
    assert sorted(splits["test"].queries) == sorted(ids["test"]) and sorted(splits["val"].queries) == sorted(ids["dev"])
    meta = json.loads((splits_dir("team") / "split_meta.json").read_text())
    assert meta["made"].startswith("the folder's own splits") and meta["params"]["resplit"] is False
    resplit = prepare_splits("team", str(tmp_path / "team"), resplit=True, log=lambda _: None)  # other values: rebuilt
    assert set(resplit["test"].queries) != set(ids["test"])
    assert json.loads((splits_dir("team") / "split_meta.json").read_text())["made"].startswith("re-split")


def test_the_cli_trains_validates_and_tests_on_the_folders_splits(tmp_path, tiny_bert_dir, _artifacts_in_tmp, capsys):
    from rerank_utils.cli.main import main

    ids = beir_folder(tmp_path / "team")
    recipe = "{epochs: 1, batch_size: 4, max_length: 32, num_negatives: 2}"
    config = tmp_path / "team.yaml"
    config.write_text(f"profile: smoke\nname: teamcli\ndata_source: team\nembedding_model: {tiny_bert_dir}\nreranker_model: {tiny_bert_dir}\n"
                      f"max_queries: null\nfinetune:\n  architecture: bridge\n  top_k: 5\n  standard: {recipe}\n  bridge: {recipe}\n"
                      "evaluate:\n  top_k: 5\n", encoding="utf-8")
    cfg = ["--config", str(config)]
    assert main(["prepare", *cfg]) == 0
    out = capsys.readouterr().out
    assert "the folder's own splits: train 21 queries (qrels/train.tsv), val 3" in out and "train 21, val 3, test 6 queries" in out
    assert main(["finetune", *cfg, "--quiet"]) == 0
    facts = json.loads((_artifacts_in_tmp / "teamcli" / "models" / "bridge" / "training.json").read_text())
    train = build_dataset(tmp_path / "team").subset(ids["train"])
    val = build_dataset(tmp_path / "team").subset(ids["dev"])
    assert facts["data_fingerprint"] == data_fingerprint(train, val)  # trained on train.tsv, validated on dev.tsv
    assert main(["evaluate", *cfg]) == 0
    assert "6 test queries" in capsys.readouterr().out
    result = json.loads((_artifacts_in_tmp / "teamcli" / "pipeline" / "evaluate_test.json").read_text())
    assert result["comparisons"]["bi-encoder + reranker vs bi-encoder"]["n_queries"] == 6
