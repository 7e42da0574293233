"""Issue 14, "feed the model well": an exported scorer tokenises a request once, sorts its pairs by TOKEN count and pads
each batch only to its own longest, and returns the scores in the order given."""

from __future__ import annotations

import numpy as np

from rerank_utils.models import onnx_runtime
from rerank_utils.models.onnx_runtime import _scores_by_length


class WordScorer:
    """One token per word, right-padded; the 'model' scores a row by the sum of its ids and records each batch."""

    def __init__(self):
        self.batches: list[dict[str, np.ndarray]] = []
        self.feature_calls = 0

    def features(self, pairs):
        self.feature_calls += 1
        rows = [[len(w) for w in f"{q} {d}".split()] for q, d in pairs]
        width = max(map(len, rows))
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = r, 1
        return {"input_ids": ids, "attention_mask": mask}

    def _run(self, feeds):
        self.batches.append(feeds)
        return (feeds["input_ids"] * feeds["attention_mask"]).sum(axis=1, keepdims=True).astype(np.float32)


# character length and token count disagree: the longest texts in characters are one word each
PAIRS = [("q", "incomprehensibilities"), ("a b", "c d e f g"), ("q", "x"), ("a", "b c d e f g h i j"),
         ("uncharacteristically", "extraordinarily"), ("a b c", "d e")]


def test_batches_are_sorted_by_tokens_and_padded_to_their_own_longest():
    scorer = WordScorer()
    scores = _scores_by_length(scorer, PAIRS, batch_size=2)
    expected = [sum(len(w) for w in f"{q} {d}".split()) for q, d in PAIRS]
    assert scores.tolist() == expected  # the order given, whatever order the batches ran in
    assert scorer.feature_calls == 1  # tokenised once
    widths = [b["input_ids"].shape[1] for b in scorer.batches]
    assert widths == [10, 5, 2]  # 10+7, 5+2, 2+2 words: longest first, by words, not characters
    for batch in scorer.batches:  # no column of padding alone: each batch as wide as its longest row
        assert batch["attention_mask"][:, -1].any() and batch["input_ids"].flags["C_CONTIGUOUS"]


def test_a_large_request_is_tokenised_in_chunks_and_an_empty_one_scores_nothing(monkeypatch):
    monkeypatch.setattr(onnx_runtime, "CHUNK_PAIRS", 4)
    scorer = WordScorer()
    scores = _scores_by_length(scorer, PAIRS * 2, batch_size=3)
    assert scorer.feature_calls == 3  # 12 pairs in chunks of 4
    assert scores.tolist() == [sum(len(w) for w in f"{q} {d}".split()) for q, d in PAIRS * 2]
    empty = WordScorer()
    assert _scores_by_length(empty, [], batch_size=8).shape == (0,) and empty.feature_calls == 0
