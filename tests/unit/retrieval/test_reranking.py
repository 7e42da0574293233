"""Reranking a first stage and fusing scores."""

from __future__ import annotations

import pytest

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.retrieval.reranking import candidates, rerank_run, zscore_fusion


class LengthScorer:
    """A fake cross-encoder: longer passages score higher."""

    def __init__(self):
        self.calls = 0

    def predict(self, pairs, batch_size=32, show_progress_bar=False):
        self.calls += 1
        return [float(len(p)) for _, p in pairs]


def test_rerank_only_the_top_k_in_one_batch():
    ds = RetrievalDataset({"a": "x", "b": "xxx", "c": "xx", "d": "xxxx"}, {"q1": "?", "q2": "?"}, {"q1": {"a": 1}, "q2": {"b": 1}})
    first = {"q1": {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.1}, "q2": ["c", "b"], "q9": ["a"]}
    model = LengthScorer()
    run = rerank_run(model, ds, first, top_k=3)
    assert model.calls == 1 and set(run) == {"q1", "q2"}
    assert run["q1"] == {"a": 1.0, "b": 3.0, "c": 2.0}  # d was below top-3: never scored
    assert candidates(first, 2)["q1"] == ["a", "b"]
    with pytest.raises(ValueError):
        candidates(first, 0)


def test_zscore_fusion_weights():
    a = {"q": {"d1": 1.0, "d2": 0.0}}
    b = {"q": {"d1": 0.0, "d2": 10.0}}
    assert zscore_fusion(a, b, weight_a=1.0)["q"] == {"d1": 1.0, "d2": -1.0}
    fused = zscore_fusion(a, b, weight_a=0.5)["q"]
    assert fused["d1"] == pytest.approx(0.0) and fused["d2"] == pytest.approx(0.0)


class OracleScorer:
    """A fake cross-encoder that knows the relevant passages (they contain "gold")."""

    def predict(self, pairs, batch_size=32, show_progress_bar=False):
        return [1.0 if "gold" in p else 0.0 for _, p in pairs]


def test_evaluate_rerankers_one_table_with_pairwise_intervals():
    from rerank_utils.evaluation.reports import evaluate_rerankers

    n = 30
    corpus = {f"g{i}": f"gold {i}" for i in range(n)} | {f"x{i}": "x" * (20 + i) for i in range(n)}
    queries = {f"q{i}": "?" for i in range(n)}
    qrels = {f"q{i}": {f"g{i}": 1} for i in range(n)}
    ds = RetrievalDataset(corpus, queries, qrels)
    # the first stage puts the gold passage 4th, under three long distractors
    first = {f"q{i}": {f"x{(i + j) % n}": 1.0 - j / 10 for j in range(3)} | {f"g{i}": 0.5} for i in range(n)}
    ev = evaluate_rerankers({"oracle": OracleScorer(), "length": LengthScorer()}, ds, {"FS": first}, top_k=4, metrics=("ndcg@10", "hit@1"))
    assert list(ev.results) == ["FS", "FS + oracle", "FS + length"]
    assert ev.results["FS + oracle"].aggregate["hit@1"] == 1.0 and ev.results["FS"].aggregate["hit@1"] == 0.0
    assert ev.results["FS + length"].aggregate["hit@1"] == 0.0  # long distractors beat "gold i"
    up = ev.comparisons["FS + oracle vs FS"]
    assert up.diff > 0 and up.low > 0
    between = ev.comparisons["FS + length vs FS + oracle"]  # b minus a: length minus oracle
    assert between.diff < 0 and between.high < 0
    assert set(ev.table(metrics=("ndcg@10",)).index) == set(ev.results)
    with pytest.raises(ValueError, match="no rerankers"):
        evaluate_rerankers({}, ds, {"FS": first})


def test_guide_claim_states_the_relative_change_and_the_verdict():
    from rerank_utils.evaluation.reports import guide_claim
    from rerank_utils.evaluation.significance import PairedComparison

    def pc(a, b, low, high):
        return PairedComparison("ndcg@10", a, b, b - a, low, high, 0.01, 10, 5, 3, 2)

    out = guide_claim({"inside": pc(0.5, 0.6, 0.05, 0.15), "outside": pc(0.7, 0.75, 0.0, 0.1), "zero": pc(0.0, 0.1, 0.0, 0.2)})
    assert out["inside"] == "+20% (95 % interval +10% to +30%): inside the guide's +10% to +30%"
    assert out["outside"].startswith("+7% (95 % interval +0% to +14%): outside")
    assert out["zero"] == "no relative change: the baseline scores 0"
