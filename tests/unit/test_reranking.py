"""Reranking a first stage and fusing scores."""

from __future__ import annotations

import pytest

from rerank_utils.data import RetrievalDataset
from rerank_utils.reranking import candidates, rerank_run, zscore_fusion


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
