"""Issue 15: a PyTorch cross-encoder's raw scores are computed in batches sorted by token count (less padding than
``CrossEncoder.predict``'s sort by characters), every pair once, the scores in the order given and equal to
``predict``'s up to float32 rounding; any other scorer is called as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder

from rerank_utils.models.precision import Bf16Autocast
from rerank_utils.models.scores import raw_scores, token_sorted_batches
from tests.spies import spy_predict

# Token counts differ from character counts on purpose: "roof" is one token, "zzzzzz" six ("z" and "##z"s), so the
# longest pair in characters is not the longest in tokens.
PAIRS = [("roof", "roof water law tax house"), ("tax", "zzzzzz zzzzzz"), ("law", "water"), ("cost", "the building permit cost"),
         ("what", "a"), ("roof", "zzzzzzzzzz"), ("house", "the house tax is paid"), ("permit", "permit")]


@pytest.fixture()
def model(tiny_bert_dir):
    torch.manual_seed(3)
    return CrossEncoder(str(tiny_bert_dir), max_length=32)


def _lengths(model, pairs):
    return [len(ids) for ids in model.tokenizer([p[0] for p in pairs], [p[1] for p in pairs])["input_ids"]]


def test_batches_hold_every_pair_once_longest_in_tokens_first(model):
    batches = token_sorted_batches(model, PAIRS, batch_size=3)
    assert [len(b) for b in batches] == [3, 3, 2]
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(len(PAIRS)))
    lengths = _lengths(model, PAIRS)
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True)
    chars = [len(q) + len(d) for q, d in PAIRS]
    assert int(np.argmax(chars)) != int(order[0])  # the sort is by tokens, not characters


def test_raw_scores_are_predicts_logits_in_the_order_given(model, monkeypatch):
    expected = model.predict(PAIRS, activation_fn=torch.nn.Identity())
    calls = spy_predict(model, monkeypatch)
    scores = raw_scores(model, PAIRS, batch_size=3)
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    lengths = dict(zip(PAIRS, _lengths(model, PAIRS)))
    assert [len(c) for c in calls] == [3, 3, 2]
    assert [lengths[p] for c in calls for p in c] == sorted(lengths.values(), reverse=True)  # one call per sorted batch
    np.testing.assert_allclose(raw_scores(Bf16Autocast(model), PAIRS, batch_size=3), expected, atol=0.05)  # the wrapper too


def test_a_pair_longer_than_max_length_is_scored_truncated_as_predict_scores_it(tiny_bert_dir):
    short = CrossEncoder(str(tiny_bert_dir), max_length=8)
    pairs = [("roof", "water " * 40), ("tax", "the house tax is")]
    assert _lengths(short, pairs)[0] > 8
    np.testing.assert_allclose(raw_scores(short, pairs, batch_size=1),
                               short.predict(pairs, activation_fn=torch.nn.Identity()), atol=1e-5)


def test_any_other_scorer_is_called_once_with_every_pair():
    class Plain:
        calls = []

        def predict(self, pairs, batch_size=32, show_progress_bar=False):
            self.calls.append(list(pairs))
            return [float(len(d)) for _, d in pairs]

    plain = Plain()
    assert token_sorted_batches(plain, PAIRS, 3) is None
    assert raw_scores(plain, PAIRS, batch_size=3).tolist() == [float(len(d)) for _, d in PAIRS]
    assert plain.calls == [PAIRS]
