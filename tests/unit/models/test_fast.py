"""Issue 15, "inference through the fast path": ``fast_reranker`` gives evaluation a PyTorch reranker's export on
OpenVINO (bf16 where the CPU has it) with the same ranking signature, keyed in the score memo apart from PyTorch's,
and the model itself wherever the fast path does not pay."""

from __future__ import annotations

import glob
import os
import tempfile

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder

from rerank_utils.models import fast, score_memo
from rerank_utils.models.bridge import build_bridge_reranker
from rerank_utils.models.fingerprint import model_fingerprint
from rerank_utils.models.onnx_runtime import OnnxBridgeReranker, OnnxCrossEncoder
from rerank_utils.models.precision import cpu_has_bf16
from rerank_utils.models.scores import ranking_scores, raw_scores
from tests.extras import dev_extra

dev_extra("onnx")
dev_extra("openvino")

QUERIES = ["what is the building permit cost", "who pays the house tax", "roof water law"]
DOCS = ["the building permit cost is a fee", "the house tax is paid by the buyer of the house", "water on the roof",
        "a contract", "what is the law of the roof and the water deduction for a house building permit " * 3]
PAIRS = [(q, d) for q in QUERIES for d in DOCS]


@pytest.fixture()
def forced(monkeypatch):
    """The fast path taken whatever this CPU is (OpenVINO then computes in fp32 where bf16 is not native)."""
    monkeypatch.setattr(fast, "cpu_has_bf16", lambda: True)
    fast._LOADED.clear()
    score_memo.forget()
    yield
    fast._LOADED.clear()
    score_memo.forget()


@pytest.mark.parametrize("architecture", ["standard", "bridge"])
def test_the_export_ranks_as_pytorch_and_is_memoised_under_its_own_key(tiny_bert_dir, forced, architecture):
    torch.manual_seed(3)
    if architecture == "standard":
        model = CrossEncoder(str(tiny_bert_dir), max_length=64)
    else:
        model = build_bridge_reranker(str(tiny_bert_dir), bias_mode="head", bias_start=-2.0, max_seq_length=64)
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "fast_reranker_*")))
    scorer = fast.fast_reranker(model)
    assert isinstance(scorer, OnnxCrossEncoder if architecture == "standard" else OnnxBridgeReranker)
    assert scorer.runtime == "openvino"
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "fast_reranker_*"))) == before  # the export is removed
    precision = "bf16" if cpu_has_bf16() else "f32"
    assert model_fingerprint(scorer) == f"{model_fingerprint(model)}-openvino-{precision}"
    # raw scores and the ranking scores (the model's own activation) as PyTorch's, up to bf16 rounding
    reference, ours = raw_scores(model, PAIRS), raw_scores(scorer, PAIRS)
    spread = np.ptp(reference)
    assert spread > 0 and np.abs(ours - reference).max() <= (0.02 if precision == "bf16" else 1e-4) * max(spread, 1.0)
    assert np.abs(ranking_scores(scorer, PAIRS) - ranking_scores(model, PAIRS)).max() < 0.02
    # the memo keys the export apart from PyTorch: PyTorch's scores are never handed out for it, and back
    assert np.array_equal(score_memo.memo_raw_scores(model, PAIRS), raw_scores(model, PAIRS))
    assert np.array_equal(score_memo.memo_raw_scores(scorer, PAIRS), ours)
    assert score_memo.counts() == {"scored": 2 * len(PAIRS), "from_memory": 0}
    assert np.array_equal(score_memo.memo_raw_scores(scorer, PAIRS), ours)
    assert score_memo.counts() == {"scored": 2 * len(PAIRS), "from_memory": len(PAIRS)}
    assert fast.fast_reranker(model) is scorer  # the same weights: the same export, not a second one


def test_a_model_changed_in_place_gets_a_new_export(tiny_bert_dir, forced):
    model = CrossEncoder(str(tiny_bert_dir), max_length=64)
    first = fast.fast_reranker(model)
    with torch.no_grad():
        next(model.model.parameters()).add_(0.5)
    second = fast.fast_reranker(model)
    assert second is not first and model_fingerprint(second) != model_fingerprint(first)
    assert np.abs(raw_scores(second, PAIRS) - raw_scores(model, PAIRS)).max() < 0.02 * max(np.ptp(raw_scores(model, PAIRS)), 1.0)


def test_without_native_bf16_or_for_anything_else_the_model_itself(tiny_bert_dir, monkeypatch):
    model = CrossEncoder(str(tiny_bert_dir), max_length=64)
    monkeypatch.setattr(fast, "cpu_has_bf16", lambda: False)  # bf16 emulated: OpenVINO fp32 gains too little
    assert not fast.fast_path_available() and fast.fast_reranker(model) is model
    monkeypatch.setattr(fast, "cpu_has_bf16", lambda: True)

    class Double:
        def predict(self, pairs, batch_size=32, **_):
            return np.zeros(len(pairs))

    double = Double()
    assert fast.fast_reranker(double) is double  # not a PyTorch CrossEncoder: nothing to export
    exported = fast.fast_reranker(model)
    assert fast.fast_reranker(exported) is exported  # already an export
