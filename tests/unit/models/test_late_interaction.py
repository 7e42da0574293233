"""The late-interaction (MaxSim) reranker over an embedding model's token embeddings (rerank_utils.models.late_interaction)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.models.late_interaction import MaxSimReranker
from rerank_utils.retrieval.reranking import rerank_run

PAIRS = [("what is the tax law", "the tax law deduction"), ("what is the tax law", "a house roof cost"),
         ("the roof water", "the roof water"), ("what is the tax law", "the tax law deduction")]


def _mean_maxsim_by_hand(folder, query, passage):
    tok, bert = AutoTokenizer.from_pretrained(str(folder)), AutoModel.from_pretrained(str(folder)).eval()

    def tokens(text):
        with torch.no_grad():
            h = bert(**tok(text, return_tensors="pt")).last_hidden_state[0]
        return torch.nn.functional.normalize(h, dim=-1)

    sim = tokens(query) @ tokens(passage).T
    return float(sim.max(dim=1).values.mean())


def test_scores_are_mean_maxsim_over_the_models_token_embeddings(tiny_bert_dir):
    reranker = MaxSimReranker.from_model(str(tiny_bert_dir), device="cpu")
    scores = reranker.predict(PAIRS, batch_size=2)
    want = [_mean_maxsim_by_hand(tiny_bert_dir, q, p) for q, p in PAIRS]
    assert scores.shape == (4,) and np.allclose(scores, want, atol=1e-5)
    assert scores[0] == pytest.approx(scores[3])  # the repeated pair: the same score, in the pairs' order
    assert scores[2] == pytest.approx(1.0, abs=1e-5)  # the passage is the query: every token finds itself
    assert reranker.predict([]).shape == (0,)


def test_it_reranks_a_first_stage_run_like_a_cross_encoder(tiny_bert_dir):
    ds = RetrievalDataset(corpus={"d0": "the tax law deduction", "d1": "a house roof cost", "d2": "the roof water"},
                          queries={"q": "the roof water"}, qrels={"q": {"d2": 1}}, name="t")
    run = rerank_run(MaxSimReranker.from_model(str(tiny_bert_dir), device="cpu"), ds, {"q": {"d0": 3.0, "d1": 2.0, "d2": 1.0}}, top_k=3)
    assert max(run["q"], key=run["q"].get) == "d2"  # the passage that is the query comes first (its score is the maximum, 1)


def test_fine_tuning_validates_each_epoch_keeps_the_best_and_saves_a_loadable_model(tiny_bert_dir, tmp_path):
    from rerank_utils.evaluation.metrics import evaluate_run
    from rerank_utils.training.late_interaction import fine_tune_late_interaction
    from tests.unit.training.test_retriever import TEXTS, dataset

    train, val = dataset(0, "train"), dataset(5, "val")
    val_run = {q: {f"d{i}": float(-i) for i in range(len(TEXTS))} for q in val.queries}  # every passage, in corpus order
    negatives = {q: [f"d{(i + 1) % len(TEXTS)}"] for i, q in enumerate(train.queries)}
    reranker, facts = fine_tune_late_interaction(train, val, val_run, tmp_path / "li", negatives, base_model=str(tiny_bert_dir),
                                                 epochs=2, batch_size=4, max_length=32, top_k=10, device="cpu")
    assert [r["epoch"] for r in facts["validation_by_epoch"]] == [1.0, 2.0] and facts["triples"] == 6
    assert facts["best_validation_ndcg@10"] == max([facts["base_validation_ndcg@10"]] + [r["val ndcg@10"] for r in facts["validation_by_epoch"]])
    # the returned model is the one kept: reranking validation with it gives the recorded best
    got = evaluate_run(rerank_run(reranker, val, val_run, top_k=10), val.qrels, ["ndcg@10"]).aggregate["ndcg@10"]
    assert got == pytest.approx(facts["best_validation_ndcg@10"], abs=1e-6)
    from sentence_transformers import MultiVectorEncoder

    reloaded = MaxSimReranker(MultiVectorEncoder(str(tmp_path / "li"), device="cpu"))
    assert np.allclose(reloaded.predict(PAIRS), reranker.predict(PAIRS), atol=1e-5)


def test_training_continues_from_a_trained_reranker_and_never_hands_back_a_worse_one(tiny_bert_dir, tmp_path):
    from rerank_utils.training.late_interaction import fine_tune_late_interaction
    from tests.unit.training.test_retriever import TEXTS, dataset

    train, val = dataset(0, "train"), dataset(5, "val")
    val_run = {q: {f"d{i}": float(-i) for i in range(len(TEXTS))} for q in val.queries}
    negatives = {q: [f"d{(i + 1) % len(TEXTS)}"] for i, q in enumerate(train.queries)}
    first = MaxSimReranker.from_model(str(tiny_bert_dir), max_length=32, device="cpu")
    before = first.predict(PAIRS)
    second, facts = fine_tune_late_interaction(train, val, val_run, tmp_path / "again", negatives, base_model=first,
                                               epochs=1, batch_size=4, top_k=10, device="cpu")
    assert facts["base_model"] == "a MaxSimReranker" and facts["best_validation_ndcg@10"] >= facts["base_validation_ndcg@10"]
    if facts["best_epoch"] == 0.0:  # kept the starting model: exactly its scores
        assert np.allclose(second.predict(PAIRS), before, atol=1e-6)
    else:
        assert not np.allclose(second.predict(PAIRS), before, atol=1e-6)
