"""Platt calibration (fitted on validation, saved with the model, applied wherever a probability is returned) and
rankings that never tie on saturated float32 probabilities: rerank_run, the service and the LlamaIndex
postprocessor all order by raw scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.special import expit

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.models.calibration import (
    CALIBRATION_FILE,
    PlattCalibration,
    calibrate_reranker,
    copy_calibration,
    fit_platt,
    load_calibration,
)
from rerank_utils.models.scores import activation_of, ranking_scores, raw_scores
from rerank_utils.retrieval.reranking import rerank_run


class SaturatingCrossEncoder:
    """Shaped like CrossEncoder.predict: raw score = 20 + the number of query words in the text (so every logit is
    over 17); the default activation is a float32 sigmoid, which is exactly 1.0 for all of them."""
    activation_fn = torch.nn.Sigmoid()

    def predict(self, pairs, batch_size=32, show_progress_bar=False, activation_fn=None):
        logits = torch.tensor([20.0 + sum(w in t.split() for w in q.split()) for q, t in pairs], dtype=torch.float32)
        return (activation_fn or self.activation_fn)(logits).numpy()


PAIRS = [("roof tax permit", "nothing"), ("roof tax permit", "roof"), ("roof tax permit", "roof tax"), ("roof tax permit", "roof tax permit")]


def test_float32_sigmoid_ties_where_raw_scores_do_not():
    model = SaturatingCrossEncoder()
    assert len(set(model.predict(PAIRS).tolist())) == 1  # the problem: four different logits, one probability
    assert raw_scores(model, PAIRS).tolist() == [20.0, 21.0, 22.0, 23.0]
    ranked = ranking_scores(model, PAIRS)
    assert ranked.dtype == np.float64 and np.all(np.diff(ranked) > 0) and np.allclose(ranked, expit([20, 21, 22, 23]))


def test_a_scorer_without_activation_fn_is_taken_as_raw():
    class Plain:
        def predict(self, pairs, batch_size=32, show_progress_bar=False):
            return [float(len(t)) for _, t in pairs]

    assert raw_scores(Plain(), PAIRS).tolist() == [7.0, 4.0, 8.0, 15.0]
    assert activation_of(Plain())(np.array([3.0])).tolist() == [3.0]


def test_rerank_run_orders_by_raw_scores_not_saturated_probabilities():
    ds = RetrievalDataset({f"d{i}": t for i, (_, t) in enumerate(PAIRS)}, {"q": PAIRS[0][0]}, {"q": {"d3": 1}})
    run = rerank_run(SaturatingCrossEncoder(), ds, {"q": {f"d{i}": 1.0 for i in range(4)}}, top_k=4)
    assert sorted(run["q"], key=lambda d: -run["q"][d]) == ["d3", "d2", "d1", "d0"]


def test_fit_platt_recovers_a_known_logistic_and_keeps_the_order():
    rng = np.random.default_rng(0)
    s = rng.uniform(-4, 8, size=20_000)
    y = rng.random(s.size) < expit(0.8 * s - 2.0)
    cal = fit_platt(s, y, fitted_on="synthetic")
    assert cal.a == pytest.approx(0.8, abs=0.05) and cal.b == pytest.approx(-2.0, abs=0.1)
    assert cal.pairs == 20_000 and cal.positives == int(y.sum()) and cal.fitted_on == "synthetic"
    p = cal.probability(np.sort(s))
    assert np.all(np.diff(p) >= 0) and p.min() < 0.05 and p.max() > 0.95


def test_fit_platt_on_bridge_like_scores_spreads_them_over_0_1():
    """Raw scores of 15 to 25 (a bridge's scale x cosine): sigmoid says 1.0 for all; calibrated they spread."""
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(22, 1.5, 200), rng.normal(18, 1.5, 1800)
    cal = fit_platt(np.r_[pos, neg], np.r_[np.ones(200), np.zeros(1800)])
    p_pos, p_neg = cal.probability(pos), cal.probability(neg)
    assert np.all(expit(np.r_[pos, neg].astype(np.float32)) > 0.9999)
    assert np.median(p_pos) > 0.5 > np.median(p_neg) and 0 < p_neg.min() < 0.01 and 0.99 < p_pos.max() < 1


@pytest.mark.parametrize("scores, labels, words", [
    ([1.0, 2.0], [1, 1], "2 positive and 0 negative"),
    ([1.0, 2.0], [0, 0], "0 positive and 2 negative"),
    ([1.0], [1, 0], "give one label per score"),
    ([float("nan"), 1.0], [1, 0], "NaN or infinite"),
])
def test_fit_platt_refusals(scores, labels, words):
    with pytest.raises(ValueError, match=words):
        fit_platt(scores, labels)


def test_save_load_copy_and_a_broken_file(tmp_path):
    cal = PlattCalibration(a=0.5, b=-10.0, pairs=40, positives=4, fitted_on="validation: 2 queries x top-20")
    cal.save(tmp_path / "model") if (tmp_path / "model").mkdir() is None else None
    assert load_calibration(tmp_path / "model") == cal
    assert copy_calibration(tmp_path / "model", tmp_path / "onnx") == tmp_path / "onnx" / CALIBRATION_FILE
    assert load_calibration(tmp_path / "onnx") == cal
    assert load_calibration(tmp_path / "nothing") is None and copy_calibration(tmp_path / "nothing", tmp_path / "x") is None
    (tmp_path / "model" / CALIBRATION_FILE).write_text(json.dumps({"slope": 1}))
    with pytest.raises(ValueError, match=f"{tmp_path / 'model' / CALIBRATION_FILE}: not a calibration"):
        load_calibration(tmp_path / "model")


def test_calibrate_reranker_on_a_validation_run():
    corpus = {f"d{i}": " ".join(["roof", "tax", "permit"][: i % 4]) + f" doc {i}" for i in range(40)}
    queries = {f"q{j}": "roof tax permit" for j in range(10)}
    qrels = {f"q{j}": {f"d{4 * j + 3}": 1} for j in range(10)}  # the doc with all three query words is the answer
    run = {f"q{j}": {f"d{4 * j + k}": 1.0 for k in range(4)} for j in range(10)}  # each query's four candidates
    cal = calibrate_reranker(SaturatingCrossEncoder(), RetrievalDataset(corpus, queries, qrels), run, top_k=4)
    assert cal.pairs == 40 and cal.positives == 10 and cal.fitted_on == "validation: 10 queries x top-4"
    assert cal.probability(23.0) > 0.5 > cal.probability(22.0)  # 23 = all three words: the answers
    with pytest.raises(ValueError, match="no candidates"):
        calibrate_reranker(SaturatingCrossEncoder(), RetrievalDataset(corpus, queries, qrels), {}, top_k=5)


def test_the_service_returns_calibrated_probabilities_ordered_by_raw_scores():
    from fastapi.testclient import TestClient

    from rerank_utils.serving.app import RerankService, create_app
    from rerank_utils.serving.batching import RawScorer

    cal = PlattCalibration(a=2.0, b=-43.0)
    service = RerankService(RawScorer(SaturatingCrossEncoder()), calibration=cal)
    client = TestClient(create_app(service))
    texts = [t for _, t in PAIRS]
    results = client.post("/v2/rerank", json={"query": PAIRS[0][0], "documents": texts}).json()["results"]
    assert [r["index"] for r in results] == [3, 2, 1, 0]
    assert [r["relevance_score"] for r in results] == pytest.approx(expit(2.0 * np.array([23, 22, 21, 20]) - 43.0).tolist())
    tei = client.post("/rerank", json={"query": PAIRS[0][0], "texts": texts}).json()
    assert [r["index"] for r in tei] == [3, 2, 1, 0] and 0.1 < tei[1]["score"] < 0.9
    assert client.get("/health").json()["calibrated"] is True
    plain = TestClient(create_app(RerankService(RawScorer(SaturatingCrossEncoder())))).post("/rerank", json={"query": PAIRS[0][0], "texts": texts})
    assert [r["index"] for r in plain.json()] == [3, 2, 1, 0]  # uncalibrated: sigmoid in float64, still ordered by raw


def test_load_service_and_the_llamaindex_postprocessor_read_the_folders_calibration(tiny_bert_dir, tmp_path):
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from rerank_utils.integrations.llamaindex import cross_encoder_reranker
    from rerank_utils.models.bridge import build_bridge_reranker
    from rerank_utils.serving.app import load_service

    folder = tmp_path / "bridge"
    model = build_bridge_reranker(str(tiny_bert_dir), max_seq_length=32)
    model.save_pretrained(str(folder))
    texts = ["the roof", "a tax on houses", "permit for the roof", "nothing"]
    raw = raw_scores(model, [("roof permit", t) for t in texts])
    cal = fit_platt(raw, [0, 0, 1, 0])
    cal.save(folder)
    service = load_service(str(folder), device="cpu", max_queue_pairs=100)
    assert service.calibration == cal
    service.scorer.close()
    post = cross_encoder_reranker(str(folder), top_n=4, device="cpu")
    nodes = [NodeWithScore(node=TextNode(id_=f"n{i}", text=t), score=0.0) for i, t in enumerate(texts)]
    out = post.postprocess_nodes(nodes, query_bundle=QueryBundle("roof permit"))
    assert [n.node.node_id for n in out] == [f"n{i}" for i in np.argsort(-raw, kind="stable")]
    assert [n.score for n in out] == pytest.approx(sorted(cal.probability(raw).tolist(), reverse=True), abs=1e-5)
