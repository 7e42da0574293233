"""Saving and reloading a profile's splits; rebuilding them when missing or made with other parameters."""

from __future__ import annotations

import pytest

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.data.saved_splits import (
    load_splits,
    prepare_splits,
    save_splits,
    saved_split_params,
)
from rerank_utils.data.splits import check_leakage, split_dataset
from rerank_utils.data.triples import read_triples
from rerank_utils.models.published import (
    DEFAULT_RERANKER_FILE,
    publish_reranker,
    published_reranker,
)
from rerank_utils.paths import artifacts_dir


def make_ds(n=30):
    return RetrievalDataset(
        corpus={f"d{i}": f"answer number {i}" for i in range(n)},
        queries={f"q{i}": f"question number {i}?" for i in range(n)},
        qrels={f"q{i}": {f"d{i}": 1.0} for i in range(n)},
        doc_meta={f"d{i}": {"category": "c" + str(i % 3)} for i in range(n)},
        query_meta={f"q{i}": {"category": "c" + str(i % 3)} for i in range(n)},
        name="toy",
    )


def test_save_and_load_round_trip(tmp_path):
    splits = split_dataset(make_ds(), seed=3)
    folder = save_splits(splits, tmp_path / "splits", {"seed": 3})
    loaded = load_splits(folder)
    assert list(loaded) == list(splits) == ["train", "val", "test"]
    for name in splits:
        assert list(loaded[name].queries) == list(splits[name].queries)
        assert loaded[name].qrels == splits[name].qrels
        assert loaded[name].corpus == splits[name].corpus
        assert loaded[name].query_meta == splits[name].query_meta
        records, report = read_triples(folder / "triples" / f"{name}.jsonl")
        assert report.ok and len(records) == len(splits[name])
    assert check_leakage(loaded["train"], loaded["test"]).ok


def test_load_without_meta_names_the_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="01_data_preparation"):
        load_splits(tmp_path)


def test_prepare_splits_reuses_or_rebuilds(monkeypatch):
    calls = []

    def fake_build(source):
        calls.append(source)
        return make_ds()

    monkeypatch.setattr("rerank_utils.data.saved_splits.build_dataset", fake_build)
    first = prepare_splits("unit", "toy-source", seed=1, max_queries=20)
    assert calls == ["toy-source"] and sum(len(s) for s in first.values()) == 20
    again = prepare_splits("unit", "toy-source", seed=1, max_queries=20)
    assert calls == ["toy-source"]  # same parameters: read from artifacts, not rebuilt
    assert {n: list(s.queries) for n, s in again.items()} == {n: list(s.queries) for n, s in first.items()}
    prepare_splits("unit", "toy-source", seed=2, max_queries=20)
    assert calls == ["toy-source", "toy-source"]  # another seed: rebuilt
    assert saved_split_params("unit")["seed"] == 2


def test_later_notebooks_reuse_whatever_split_01_saved(monkeypatch):
    monkeypatch.setattr("rerank_utils.data.saved_splits.build_dataset", lambda source: make_ds())
    grouped = prepare_splits("unit2", "toy", seed=1, fractions={"train": 0.5, "test": 0.5}, group_key="category")
    reused = prepare_splits("unit2", "toy", seed=1)  # what notebooks 02+ call
    assert list(reused) == ["train", "test"]
    assert {n: list(s.queries) for n, s in reused.items()} == {n: list(s.queries) for n, s in grouped.items()}
    other = prepare_splits("unit2", "toy", seed=1, max_queries=10)  # other data: rebuilt by default
    assert list(other) == ["train", "val", "test"] and sum(len(s) for s in other.values()) == 10


def test_splits_of_different_corpora_are_refused(tmp_path):
    a, b = make_ds(), make_ds()
    b.corpus = {**b.corpus, "extra": "another document"}
    with pytest.raises(ValueError, match="split 'test' has a different corpus"):
        save_splits({"train": a, "test": b}, tmp_path)


def test_publish_reranker_copies_without_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_ARTIFACTS_DIR", str(tmp_path / "art"))
    src = tmp_path / "bridge"
    (src / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (src / "modules.json").write_text("[]")
    (src / "model.safetensors").write_bytes(b"weights")
    old = artifacts_dir("p", "models", "reranker")
    (old / "stale.bin").write_bytes(b"old model")  # a previous default is replaced, not merged
    target = publish_reranker("p", src, "bridge", "best on validation")
    assert sorted(p.name for p in target.iterdir()) == [DEFAULT_RERANKER_FILE, "model.safetensors", "modules.json"]
    assert published_reranker("p") == {"architecture": "bridge", "copied_from": str(src), "reason": "best on validation"}
    assert published_reranker("other") is None
    with pytest.raises(FileNotFoundError, match="holds no saved model"):
        publish_reranker("p", tmp_path / "empty", "standard")
