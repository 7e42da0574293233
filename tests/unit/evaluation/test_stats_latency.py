"""Dataset statistics, token lengths and the latency helpers (fake models, no weights)."""

from __future__ import annotations

import numpy as np
import pytest

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.data.stats import (
    dataset_summary,
    length_report,
    pair_token_lengths,
    token_lengths,
)
from rerank_utils.evaluation.latency import (
    LatencyStats,
    bi_vs_cross_table,
    rerank_latency_by_k,
    time_calls,
)


def small_ds():
    return RetrievalDataset(
        corpus={"d1": "building permit", "d2": "roof tax", "d3": "water"},
        queries={"q1": "permit?", "q2": "tax?", "q3": "nothing"},
        qrels={"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 1}, "q3": {"d1": 0}},
        query_meta={"q1": {"category": "bygglov"}, "q2": {"category": "skatt"}, "q3": {"category": "skatt"}},
    )


def test_dataset_summary_counts():
    s = dataset_summary(small_ds())
    assert s["documents"] == 3 and s["queries"] == 3
    assert s["judged_positive_pairs"] == 3
    assert s["queries_with_several_positives"] == 1 and s["queries_without_positive"] == 1
    assert s["documents_never_positive"] == 0
    assert s["categories"] == 2 and s["largest_categories"] == {"skatt": 2, "bygglov": 1}


def test_token_lengths_count_special_tokens(tiny_bert_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    assert token_lengths(tok, ["the permit", "roof"]) == [4, 3]  # [CLS] the permit [SEP]; [CLS] roof [SEP]
    assert pair_token_lengths(tok, [("the permit", "roof")]) == [6]  # [CLS] the permit [SEP] roof [SEP]


def test_length_report():
    r = length_report([10, 20, 30, 300], max_length=256)
    assert r["n"] == 4 and r["max"] == 300 and r["over_max_length"] == 1 and r["share_over_max_length"] == 0.25
    assert r["p50"] == 25.0
    with pytest.raises(ValueError, match="no lengths"):
        length_report([], 10)


def test_latency_stats_and_time_calls():
    s = LatencyStats.from_samples([1.0, 2.0, 3.0, 4.0])
    assert (s.n, s.mean, s.p50) == (4, 2.5, 2.5)
    calls = []
    out = time_calls(calls.append, [1, 2, 3], warmup=1)
    assert calls == [1, 1, 2, 3] and len(out) == 3 and all(t >= 0 for t in out)
    with pytest.raises(ValueError):
        LatencyStats.from_samples([])


class FakeCrossEncoder:
    def __init__(self):
        self.batches = []

    def predict(self, pairs, batch_size=32, show_progress_bar=False):
        self.batches.append(len(pairs))
        return np.zeros(len(pairs))


def test_rerank_latency_by_k_scores_exactly_k_pairs_per_query():
    ds = small_ds()
    ce = FakeCrossEncoder()
    cands = {"q1": ["d1", "d2", "d3"], "q2": ["d2", "d1", "d3"]}
    rows = rerank_latency_by_k(ce, {q: ds.queries[q] for q in cands}, cands, ds.corpus, [1, 2, 5])
    assert [r["k"] for r in rows] == [1, 2, 5]
    assert [r["pairs"] for r in rows] == [2, 4, 6]  # k=5 is capped by the 3 candidates there are
    assert ce.batches == [1, 1, 1, 2, 2, 2, 3, 3, 3]  # per K: one warm-up call, then each query
    table = bi_vs_cross_table(
        {"corpus_docs": 3, "corpus_encode_s": 0.5, "docs_per_s": 6.0, "query_p50_s": 0.001}, rows, 0.7, n_docs=3
    )
    assert list(table.columns) == ["bi-encoder", "cross-encoder"]
    assert table.loc["quality on this data (NDCG@10)", "bi-encoder"] == "0.700"


def test_sample_is_seeded_keeps_order_and_the_whole_corpus():
    ds = RetrievalDataset(
        corpus={f"d{i}": f"text {i}" for i in range(50)},
        queries={f"q{i}": f"query {i}" for i in range(50)},
        qrels={f"q{i}": {f"d{i}": 1} for i in range(50)},
    )
    a, b, c = ds.sample(10, seed=1), ds.sample(10, seed=1), ds.sample(10, seed=2)
    assert list(a.queries) == list(b.queries) != list(c.queries)
    assert len(a) == 10 and list(a.queries) == sorted(a.queries, key=lambda q: int(q[1:]))
    assert a.corpus == ds.corpus and set(a.qrels) == set(a.queries)
    assert len(ds.sample(500)) == 50
    with pytest.raises(ValueError, match="positive integer"):
        ds.sample(0)


def test_category_counts_per_split():
    from rerank_utils.data.stats import category_counts

    ds = small_ds()
    counts = category_counts({"train": ds.subset(["q1", "q2"]), "test": ds.subset(["q3"])})
    assert counts == {"train": {"bygglov": 1, "skatt": 1}, "test": {"skatt": 1}}
    assert category_counts({"all": ds}, key="paper_id") == {"all": {"(none)": 3}}


def test_check_splits_names_every_pair_and_finds_a_planted_leak():
    from rerank_utils.data.splits import check_splits

    ds = small_ds()
    reports = check_splits({"train": ds.subset(["q1"]), "val": ds.subset(["q2"]), "test": ds.subset(["q1", "q3"])})
    assert list(reports) == ["train vs val", "train vs test", "val vs test"]
    assert reports["train vs val"].ok and reports["val vs test"].ok
    assert reports["train vs test"].shared_queries == ["permit?"]
