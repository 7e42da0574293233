"""Issue 15: the same (query, passage) pair is scored once per model weights in evaluation, in one process and,
with ``$RERANK_SCORE_CACHE``, across processes; a model changed in place, a scorer without torch weights and every
timing path always compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.evaluation.reports import evaluate_reranker
from rerank_utils.models import score_memo
from rerank_utils.models.score_memo import counts, forget, memo_raw_scores
from rerank_utils.models.scores import raw_scores
from rerank_utils.paths import ENV_SCORE_CACHE
from rerank_utils.retrieval.reranking import rerank_run
from tests.spies import spy_predict

QUERIES = {"q1": "what is the building permit cost", "q2": "who pays the house tax", "q3": "roof water law"}
CORPUS = {"d1": "the building permit cost is a fee", "d2": "the house tax is paid by the buyer", "d3": "water on the roof",
          "d4": "a contract", "d5": "the law of the roof and the water"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}


@pytest.fixture()
def model(tiny_bert_dir):
    torch.manual_seed(5)
    forget()
    yield CrossEncoder(str(tiny_bert_dir), max_length=32)
    forget()


class CountingScorer:
    """No torch weights (as an ONNX model): never memoised."""

    def __init__(self):
        self.pairs = 0

    def predict(self, pairs, batch_size=32, show_progress_bar=False):
        self.pairs += len(pairs)
        return np.arange(len(pairs), dtype=np.float32)


def test_only_new_pairs_are_scored_and_the_scores_are_the_models(model, monkeypatch):
    pairs = [(QUERIES[q], CORPUS[d]) for q in QUERIES for d in CORPUS]
    first = memo_raw_scores(model, pairs[:9])
    assert counts() == {"scored": 9, "from_memory": 0}
    seen = spy_predict(model, monkeypatch)
    both = memo_raw_scores(model, pairs + pairs[:2])  # 6 new pairs, the first 9 and the 2 repeats from memory
    assert sorted(p for batch in seen for p in batch) == sorted(pairs[9:]) and len(seen) == 1  # in one batch (sorted by tokens)
    assert counts() == {"scored": 15, "from_memory": 11}
    np.testing.assert_array_equal(both[:9], first)
    np.testing.assert_allclose(both[:15], raw_scores(model, pairs), atol=1e-5)  # as predict scores them, raw


def test_weights_changed_in_place_are_a_new_model(model):
    pairs = [(QUERIES["q1"], CORPUS["d1"])]
    before = memo_raw_scores(model, pairs)
    with torch.no_grad():
        next(model.model.parameters()).add_(0.5)
    after = memo_raw_scores(model, pairs)
    assert counts()["scored"] == 2 and after[0] != before[0]
    np.testing.assert_allclose(after, raw_scores(model, pairs), atol=1e-6)


def test_a_scorer_without_weights_always_computes_and_only_a_few_models_are_kept(model, tiny_bert_dir, monkeypatch):
    scorer = CountingScorer()
    memo_raw_scores(scorer, [("a", "b")] * 3)
    memo_raw_scores(scorer, [("a", "b")] * 3)
    assert scorer.pairs == 6 and counts() == {"scored": 0, "from_memory": 0}
    monkeypatch.setattr(score_memo, "MODELS_KEPT", 2)
    models = [model]
    for shift in (0.1, 0.2):
        other = CrossEncoder(str(tiny_bert_dir), max_length=32)
        with torch.no_grad():
            next(other.model.parameters()).add_(shift)
        models.append(other)
    for m in models:
        memo_raw_scores(m, [("a", "b")])
    assert len(score_memo._MEMO) == 2
    memo_raw_scores(models[0], [("a", "b")])  # the oldest was dropped: scored again
    assert counts() == {"scored": 4, "from_memory": 0}


def test_evaluation_scores_shared_candidates_once_and_rerank_run_computes_unless_asked(model):
    ds = RetrievalDataset(corpus=CORPUS, queries=QUERIES, qrels=QRELS)
    a = {q: {d: float(i) for i, d in enumerate(CORPUS)} for q in QUERIES}
    b = {q: {d: float(-i) for i, d in enumerate(CORPUS)} for q in QUERIES}  # the same candidates, other order
    ev = evaluate_reranker(model, ds, {"A": a, "B": b}, top_k=3)
    # top-3 of A = d3 d4 d5 and of B = d1 d2 d3 per query: 5 distinct pairs per query, d3 once
    assert counts() == {"scored": 15, "from_memory": 3}
    fresh = rerank_run(model, ds, a, top_k=3)  # memo off: every pair computed, same scores
    assert counts() == {"scored": 15, "from_memory": 3}
    for q in QUERIES:
        assert ev.runs["A + reranker"][q] == pytest.approx(fresh[q], abs=1e-6)


def test_a_later_process_reads_back_the_scores_of_the_same_weights_saved_and_loaded(model, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_SCORE_CACHE, str(tmp_path / "scores"))
    pairs = [(QUERIES[q], CORPUS[d]) for q in QUERIES for d in CORPUS]
    first = memo_raw_scores(model, pairs[:10])
    files = list((tmp_path / "scores").glob("*.json"))
    assert len(files) == 1 and QUERIES["q1"] not in files[0].read_text()  # digests, never the texts
    model.save(str(tmp_path / "saved"))
    forget()  # what a new process starts with: nothing in memory
    loaded = CrossEncoder(str(tmp_path / "saved"), max_length=32)  # the same weights, read back as notebook 14 does
    seen = spy_predict(loaded, monkeypatch)
    again = memo_raw_scores(loaded, pairs)
    assert len(seen) == 1 and sorted(seen[0]) == sorted(pairs[10:]) and counts() == {"scored": 5, "from_memory": 10}
    np.testing.assert_array_equal(again[:10], first)  # the very numbers written
    forget()
    assert memo_raw_scores(loaded, pairs).tolist() == again.tolist() and counts() == {"scored": 0, "from_memory": 15}


def test_other_weights_miss_and_an_unreadable_file_is_scored_again_and_replaced(model, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_SCORE_CACHE, str(tmp_path))
    pairs = [(QUERIES["q1"], CORPUS["d1"]), (QUERIES["q2"], CORPUS["d2"])]
    memo_raw_scores(model, pairs)
    (path,) = tmp_path.glob("*.json")
    with torch.no_grad():
        next(model.model.parameters()).add_(0.5)
    forget()
    changed = memo_raw_scores(model, pairs)
    assert counts() == {"scored": 2, "from_memory": 0} and len(list(tmp_path.glob("*.json"))) == 2
    np.testing.assert_allclose(changed, raw_scores(model, pairs), atol=1e-6)
    with torch.no_grad():
        next(model.model.parameters()).sub_(0.5)
    path.write_text('{"format": 1, "model": "cut sh')  # a file cut short
    forget()
    memo_raw_scores(model, pairs)
    assert counts() == {"scored": 2, "from_memory": 0}
    forget()
    memo_raw_scores(model, pairs)  # the file was written again, whole
    assert counts() == {"scored": 0, "from_memory": 2}


def test_without_the_variable_nothing_is_written(model, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_SCORE_CACHE, raising=False)
    monkeypatch.chdir(tmp_path)
    memo_raw_scores(model, [("a", "b")])
    forget()
    memo_raw_scores(model, [("a", "b")])
    assert counts() == {"scored": 1, "from_memory": 0} and not any(tmp_path.rglob("*"))
