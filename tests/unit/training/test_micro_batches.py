"""Sorted micro-batches (``TrainingConfig.sorted_micro_batch``): the same scores and gradients as one padded forward
pass, each pass cut to its own longest pair, the model's own forward back afterwards, and fine_tune trains with it."""

from __future__ import annotations

import json
import random

import pytest
import torch

from rerank_utils.models.bridge import build_bridge_reranker
from rerank_utils.models.loading import load_cross_encoder
from rerank_utils.training.arguments import TrainingConfig
from rerank_utils.training.micro_batches import sorted_forward, sorted_micro_batches
from rerank_utils.training.recipes import Recipe, _normalised
from rerank_utils.training.trainer import fine_tune

WORDS = "building permit law contract cost tax house roof water deduction".split()


def pairs(n=13, seed=0):
    """Pairs of very different lengths (1 to 12 words), so sorting and cutting matter."""
    rng = random.Random(seed)
    return [(f"what is the {rng.choice(WORDS)}", " ".join(rng.choices(WORDS, k=rng.randint(1, 12)))) for _ in range(n)]


def scores_and_grads(model, batch, size):
    model.zero_grad()
    with sorted_micro_batches(model, size):
        scores = model(model.preprocess(batch))["scores"].view(-1)
    (scores * torch.linspace(1, 2, len(scores))).sum().backward()
    grads = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])
    return scores.detach(), grads


@pytest.fixture(params=["standard", "bridge"])
def model(request, tiny_bert_dir):
    torch.manual_seed(0)
    m = (load_cross_encoder(str(tiny_bert_dir), max_length=32) if request.param == "standard"
         else build_bridge_reranker(str(tiny_bert_dir), bias_start=-2.0, max_seq_length=32))
    return m.eval()  # no dropout: the same arithmetic, so the same numbers


def test_same_scores_and_gradients_as_one_padded_pass(model):
    batch = pairs()
    plain_scores, plain_grads = scores_and_grads(model, batch, None)
    for size in (1, 4, 5):
        scores, grads = scores_and_grads(model, batch, size)
        assert torch.allclose(scores, plain_scores, atol=1e-5), size
        assert torch.allclose(grads, plain_grads, atol=1e-5), size
    assert "forward" not in vars(model)  # the class's forward again: nothing saved or exported is wrapped


def test_each_pass_is_cut_to_its_own_longest_pair_longest_first(model):
    features = model.preprocess(pairs())
    lengths = features["attention_mask"].sum(1)
    seen = []

    def forward(part):
        seen.append((part["attention_mask"].shape, int(part["attention_mask"].sum(1).max())))
        return model.forward(part)

    out = sorted_forward(forward, features, 4)
    assert [rows for (rows, _), _ in seen] == [4, 4, 4, 1]
    assert all(width == longest for (_, width), longest in seen)  # no column of padding only
    assert [longest for _, longest in seen] == sorted(lengths.tolist(), reverse=True)[::4]
    assert torch.allclose(out["scores"], model.forward(model.preprocess(pairs()))["scores"], atol=1e-5)


def test_small_or_left_padded_batches_go_through_whole():
    calls = []

    def forward(features):
        calls.append(features["attention_mask"].shape)
        return {"scores": torch.zeros(len(features["attention_mask"]), 1)}

    right = {"attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])}
    left = {"attention_mask": torch.tensor([[0, 1, 1], [1, 1, 1], [0, 0, 1]])}
    sorted_forward(forward, right, 3)
    sorted_forward(forward, left, 1)
    assert calls == [(3, 3), (3, 3)]
    sorted_forward(forward, right, 2)
    assert calls[2:] == [(2, 3), (1, 1)]


def test_fine_tune_trains_with_it_and_records_it(tiny_bert_dir, tmp_path):
    rng = random.Random(0)
    rows = [{"query": f"what is the {w}", "passage": f"{w} {'yes' if y else 'no'} " + " ".join(rng.choices(WORDS, k=rng.randint(0, 9))),
             "label": float(y)} for w in WORDS for y in (1, 0)]
    cfg = TrainingConfig(epochs=1, batch_size=8, learning_rate=3e-3, max_length=32, warmup_ratio=0.0, pos_weight=1.0,
                         early_stopping_patience=None, sorted_micro_batch=3)
    result = fine_tune(str(tiny_bert_dir), rows, tmp_path / "m", cfg, device="cpu", show_progress=False)
    assert result.optimizer_steps == 3 and "forward" not in vars(result.model)
    facts = json.loads((tmp_path / "m" / "training.json").read_text())
    assert facts["hyper_parameters"]["sorted_micro_batch"] == 3
    with pytest.raises(ValueError, match=r"sorted_micro_batch=0: a positive integer"):
        TrainingConfig(sorted_micro_batch=0).validate()


def test_fine_tune_feeds_whole_listwise_batches_to_the_sorted_passes(tiny_bert_dir, tmp_path, monkeypatch):
    from rerank_utils.training import micro_batches

    seen = []

    def spy(forward, features, size, **kwargs):
        seen.append((features["attention_mask"].shape[0], size))
        return sorted_forward(forward, features, size, **kwargs)

    monkeypatch.setattr(micro_batches, "sorted_forward", spy)
    rows = [{"query": f"what is the {w}", "docs": [f"{w} yes", f"{w} no", "other"], "labels": [1.0, 0.0, 0.0]} for w in WORDS[:8]]
    base = dict(loss="softmax", epochs=1, batch_size=4, max_length=32, early_stopping_patience=None)
    fine_tune(str(tiny_bert_dir), rows, tmp_path / "plain", TrainingConfig(**base), device="cpu", show_progress=False)
    assert seen == []  # off by default: sentence-transformers' own passes
    fine_tune(str(tiny_bert_dir), rows, tmp_path / "sorted", TrainingConfig(**base, sorted_micro_batch=5), device="cpu", show_progress=False)
    # each step's 4 queries x 3 candidates in one call, split by length in passes of 5 (the model card's usage example,
    # scored while the checkpoint is saved, goes through it too, whole: 3 pairs)
    assert [c for c in seen if c[0] == 12] == [(12, 5), (12, 5)] and all(size == 5 for _, size in seen)


def test_a_recipe_saved_before_the_knob_is_the_same_recipe():
    recipe = Recipe("r", training=TrainingConfig(loss="lambda"))
    old = recipe.to_dict()
    del old["training"]["sorted_micro_batch"]  # what a training.json of an earlier version holds
    assert _normalised(old) == _normalised(recipe.to_dict())
    faster = Recipe("r", training=TrainingConfig(loss="lambda", sorted_micro_batch=8))
    assert _normalised(faster.to_dict()) != _normalised(old)  # another training path: trained anew, never reused
