"""The FAQ experiments of notebook 12 on a tiny random BERT: label noise at an exact rate, gradient accumulation
giving the same weights as the larger batch, training throughput rows, long inputs, the variant runner."""

from __future__ import annotations

import math

import pytest
import torch

from rerank_utils.tutorial.troubleshooting import (
    FaqExperiments,
    activation_megabytes,
    flip_labels,
    gradient_accumulation_check,
    long_pairs,
    top_k_advice,
    training_throughput,
)

WORDS = "building permit law contract cost tax house roof water deduction".split()


def pair_rows(n=20):
    return [{"query": f"what is the {w}", "passage": f"{w} {'yes' if i % 4 == 0 else 'no'}", "label": float(i % 4 == 0)}
            for i, w in enumerate((WORDS * 10)[:n])]


# ------------------------------------------------------------------------------------------ label noise
def test_flip_labels_flips_exactly_the_share_asked_for():
    rows = pair_rows(20)
    before = [r["label"] for r in rows]
    noisy = flip_labels(rows, 0.25, seed=3)
    changed = [i for i, (a, b) in enumerate(zip(rows, noisy)) if a["label"] != b["label"]]
    assert len(changed) == 5  # round(0.25 x 20)
    assert all(noisy[i]["label"] == 1.0 - rows[i]["label"] for i in changed)
    assert [r["label"] for r in rows] == before  # the input is not touched
    assert [r["passage"] for r in noisy] == [r["passage"] for r in rows]
    assert flip_labels(rows, 0.25, seed=3) == noisy  # seeded
    assert flip_labels(rows, 0.25, seed=4) != noisy
    assert flip_labels(rows, 0.0) == rows
    assert [r["label"] for r in flip_labels(rows, 1.0)] == [1.0 - x for x in before]
    assert sum(a["label"] != b["label"] for a, b in zip(rows, flip_labels(rows, 0.33))) == 7  # 6.6 rounds to 7


def test_flip_labels_on_lists_moves_the_positive_to_a_wrong_passage():
    lists = [{"query": f"q{i}", "docs": [f"d{j}" for j in range(8)], "labels": [1.0] + [0.0] * 7} for i in range(10)]
    lists[0]["labels"] = [1.0, 1.0] + [0.0] * 6  # a query with two positives keeps two
    noisy = flip_labels(lists, 0.5, seed=0)
    changed = [i for i in range(10) if noisy[i]["labels"] != lists[i]["labels"]]
    assert len(changed) == 5
    for i in range(10):
        assert sum(noisy[i]["labels"]) == sum(lists[i]["labels"])  # every list keeps its positives' count
        assert noisy[i]["docs"] == lists[i]["docs"]
    for i in changed:  # the judged answers are now labelled 0
        assert all(noisy[i]["labels"][j] == 0.0 for j, x in enumerate(lists[i]["labels"]) if x > 0)


def test_flip_labels_on_mnrl_rows_and_refusals():
    rows = [{"query": "q", "positive": f"p{i}", "negative_1": f"n{i}", "negative_2": f"m{i}"} for i in range(4)]
    noisy = flip_labels(rows, 0.5, seed=1)
    swapped = [r for r in noisy if r["positive"] != rows[0]["positive"] and not r["positive"].startswith("p")]
    assert len(swapped) == 2 and all(any(v.startswith("p") for k, v in r.items() if k.startswith("negative_")) for r in swapped)
    with pytest.raises(ValueError, match="fraction must be in"):
        flip_labels(rows, 1.5)
    with pytest.raises(ValueError, match="no 'label', 'labels' or 'positive'"):
        flip_labels([{"query": "q", "text": "t"}], 1.0)
    with pytest.raises(ValueError, match="only 0 negatives"):
        flip_labels([{"query": "q", "docs": ["a"], "labels": [1.0]}], 1.0)


# ------------------------------------------------------------------------------- gradient accumulation
def test_gradient_accumulation_gives_the_larger_batchs_weights(tiny_bert_dir, tmp_path):
    rows = pair_rows(16)
    out = gradient_accumulation_check(str(tiny_bert_dir), rows, batch_size=2, accumulation_steps=4, workdir=tmp_path,
                                      learning_rate=1e-3, max_length=32)
    ref, acc, small = out
    assert [r["effective batch"] for r in out] == [8, 8, 2]
    assert [r["optimiser steps"] for r in out] == [2, 2, 8]
    assert ref["max |w - w_ref|"] == 0.0
    assert ref["max |w - w_start|"] > 1e-4  # the weights did move
    assert acc["max |w - w_ref|"] < 1e-5  # batch 2 x 4 accumulated = batch 8
    assert small["max |w - w_ref|"] > 100 * max(acc["max |w - w_ref|"], 1e-8)  # batch 2 alone is another path
    # one step of 2 pairs keeps about a quarter of the activations of one step of 8
    assert acc["activations MB per step"] < 0.5 * ref["activations MB per step"]
    assert not list(tmp_path.iterdir())  # the three trained folders are cleaned up
    with pytest.raises(ValueError, match="not a multiple"):
        gradient_accumulation_check(str(tiny_bert_dir), rows[:10], 2, 4, tmp_path)


def test_activation_memory_grows_with_the_batch(tiny_bert_dir):
    from rerank_utils.models.loading import load_cross_encoder

    model = load_cross_encoder(str(tiny_bert_dir), device="cpu", max_length=32)
    pairs = [(r["query"], r["passage"]) for r in pair_rows(8)]
    one, four = activation_megabytes(model, pairs[:2]), activation_megabytes(model, pairs)
    assert 0 < one < four and math.isclose(four / one, 4.0, rel_tol=0.35)
    assert all(p.grad is None for p in model.parameters())  # nothing left behind


# ------------------------------------------------------------------------------------- training speed
def test_training_throughput_rows_and_restored_model(tiny_bert_dir):
    from rerank_utils.models.loading import load_cross_encoder

    model = load_cross_encoder(str(tiny_bert_dir), device="cpu", max_length=100)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pairs = [("what is the roof", "roof water tax " * 30)] * 4  # about 90 tokens: max_length 16 and 64 both cut it
    rows = training_throughput(model, pairs, max_lengths=[16, 64], batch_sizes=[2, 4], steps=2)
    assert [(r["max_length"], r["batch_size"]) for r in rows] == [(16, 2), (16, 4), (64, 2), (64, 4)]
    assert set(rows[0]) == {"max_length", "batch_size", "tokens_per_pair", "steps", "pairs", "seconds", "pairs_per_s"}
    assert [r["tokens_per_pair"] for r in rows] == [16, 16, 64, 64]  # truncated to max_length, never longer
    assert [r["pairs"] for r in rows] == [4, 8, 4, 8]
    assert all(r["seconds"] > 0 and r["pairs_per_s"] == pytest.approx(r["pairs"] / r["seconds"]) for r in rows)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and model.max_seq_length == 100
    short = training_throughput(model, [("roof", "tax")], max_lengths=[64], batch_sizes=[2], steps=1)
    assert short[0]["tokens_per_pair"] < 16  # short pairs are padded to the batch's longest, not to max_length
    with pytest.raises(ValueError, match="no pairs"):
        training_throughput(model, [], [16], [2])


def test_long_pairs_reach_the_length_asked_for(tiny_bert_dir):
    from transformers import AutoTokenizer

    from tests.unit.training.test_trainer import toy_ds

    ds = toy_ds(6)
    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    pairs = long_pairs(ds, tok, n_pairs=8, min_tokens=60, seed=0)
    assert len(pairs) == 8 and [q for q, _ in pairs[:6]] == list(ds.queries.values())
    for (q, p), qid in zip(pairs, list(ds.queries) * 2):
        assert len(tok(q, p)["input_ids"]) >= 60
        assert p.startswith(ds.corpus[ds.positives(qid)[0]])  # the answer first, then other passages
    assert long_pairs(ds, tok, 8, 60, seed=0) == pairs


# -------------------------------------------------------------------------------------------- top-K
def test_top_k_advice_says_what_each_step_of_k_buys():
    rows = [{"k": 20, "ndcg@10": 0.79, "p50_ms": 300.0, "p95_ms": 350.0, "first_stage_recall@k": 0.91},
            {"k": 5, "ndcg@10": 0.75, "p50_ms": 100.0, "p95_ms": 120.0, "first_stage_recall@k": 0.85}]
    t = top_k_advice(rows)
    assert list(t.index) == [5, 20]
    assert math.isnan(t.loc[5, "ndcg@10 gained"])
    assert t.loc[20, "ndcg@10 gained"] == pytest.approx(0.04) and t.loc[20, "extra p50 ms"] == pytest.approx(200.0)
    assert t.loc[20, "ndcg@10 per extra 100 ms"] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="no rows"):
        top_k_advice([])


# --------------------------------------------------------------------------------- the variant runner
def test_faq_experiments_train_each_variant_once(tiny_bert_dir, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    from rerank_utils.training.arguments import TrainingConfig
    from rerank_utils.training.mining import MiningConfig
    from rerank_utils.training.recipes import FirstStages, Recipe
    from tests.unit.training.test_trainer import toy_ds

    t = Transformer(str(tiny_bert_dir), max_seq_length=64)
    bi = SentenceTransformer(modules=[t, Pooling(t.get_embedding_dimension(), "mean")], device="cpu")
    train, val, test = toy_ds(8, seed=1), toy_ds(4, seed=2), toy_ds(6, seed=3)
    recipe = Recipe("b", MiningConfig("random", num_negatives=3), TrainingConfig(loss="softmax", epochs=1, batch_size=4, max_length=64),
                    train_queries=8, architecture="bridge")
    ex = FaqExperiments(recipe, train, val, test, FirstStages(train.corpus, bi), tmp_path, base_model=str(tiny_bert_dir),
                        top_k=5, device="cpu")
    base = ex.run("base")
    assert base["train_queries"] == 8 and base["label_noise"] == 0.0 and base["epochs_run"] == 1
    assert base["val NDCG@10, first stage"] == ex.first_stage_val and 0 <= base["val NDCG@10 (best)"] <= 1
    assert base["val change vs first stage"] == pytest.approx(base["val NDCG@10 (best)"] - ex.first_stage_val)
    assert "test NDCG@10" not in base
    again = ex.run("same settings, another name", train_queries=8)
    assert len(ex.runs) == 1 and again["variant"] == "same settings, another name" and again["train_s"] == base["train_s"]
    noisy = ex.run("noise", label_noise=0.5, train_queries=4)
    assert len(ex.runs) == 2 and noisy["train_queries"] == 4 and noisy["label_noise"] == 0.5
    assert noisy["training rows"] == 4 and noisy["rows with wrong labels"] == 2  # one list per query, half made wrong
    assert base["rows with wrong labels"] == 0
    long = ex.run("no early stopping", epochs=2, early_stopping_patience=None, learning_rate=1e-3, score_last_epoch=True)
    assert long["epochs_run"] == 2 and long["early_stopping_patience"] is None and long["learning_rate"] == 1e-3
    assert len(long["val_curve"]) == 2 and long["best_epoch"] in (1, 2)
    assert long["val NDCG@10 (last epoch)"] == long["val_curve"][-1]
    for label in ("test", "test, last epoch"):
        assert 0 <= long[f"{label} NDCG@10"] <= 1
        assert long[f"{label} 95% CI low"] <= long[f"{label} change vs first stage"] <= long[f"{label} 95% CI high"]
        assert long[f"{label} NDCG@10"] == pytest.approx(ex.first_stage_test + long[f"{label} change vs first stage"])
    assert len(long["validation_seconds"]) == 2 and 0 < long["validation_seconds"][0] < long["validation_seconds"][1] <= long["train_s"]
    assert not list(tmp_path.iterdir())  # the variants' folders are deleted once scored


def test_early_stopping_read_from_the_full_run_is_the_run_that_stops(tiny_bert_dir, tmp_path, monkeypatch):
    """Notebook 12 reads its early-stopped row from the run without early stopping instead of training it again:
    the two trainings are the same up to the stop (same seed, data and schedule), so the rows must agree."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    from rerank_utils.training.arguments import TrainingConfig
    from rerank_utils.training.mining import MiningConfig
    from rerank_utils.training.recipes import FirstStages, Recipe
    from tests.unit.training.test_trainer import toy_ds

    t = Transformer(str(tiny_bert_dir), max_seq_length=64)
    bi = SentenceTransformer(modules=[t, Pooling(t.get_embedding_dimension(), "mean")], device="cpu")
    train, val, test = toy_ds(8, seed=1), toy_ds(4, seed=2), toy_ds(6, seed=3)
    recipe = Recipe("b", MiningConfig("random", num_negatives=3),
                    TrainingConfig(loss="softmax", epochs=4, batch_size=4, max_length=64, learning_rate=3e-3), train_queries=8)
    ex = FaqExperiments(recipe, train, val, test, FirstStages(train.corpus, bi), tmp_path, base_model=str(tiny_bert_dir),
                        top_k=5, device="cpu")
    full = ex.run("no early stopping", early_stopping_patience=None, score_last_epoch=True)
    for patience in (1, 2):
        real = ex.run(f"patience {patience}", early_stopping_patience=patience, score_test=True)
        read = ex.early_stopped(full, patience, f"patience {patience}, read")
        for key in ("epochs_run", "best_epoch", "val_curve", "val NDCG@10 (best)", "test NDCG@10", "test 95% CI low"):
            assert read[key] == pytest.approx(real[key], abs=1e-6), (patience, key)
        if "read from" in read:  # read, not trained: its clock is the full run's at the end of its last epoch
            assert read["train_s"] == full["validation_seconds"][read["epochs_run"] - 1] and "test, last epoch NDCG@10" not in read
        else:  # the stopped run kept another epoch than the full run's best: that model was trained (here: found trained)
            assert read["best_epoch"] != full["best_epoch"]
    assert len(ex.runs) == 3  # the full run and the two real ones: reading trained nothing new

    peak = {**full, "val_curve": [0.5, 0.6, 0.55, 0.5], "best_epoch": 2, "validation_seconds": [1.0, 2.0, 3.0, 4.0]}
    read = ex.early_stopped(peak, 1, "peak")  # stops at epoch 3, keeps epoch 2: the full run's best model
    assert (read["epochs_run"], read["best_epoch"], read["val_curve"], read["train_s"]) == (3, 2, [0.5, 0.6, 0.55], 3.0)
    assert read["test NDCG@10"] == full["test NDCG@10"] and read["val change vs first stage"] == pytest.approx(0.6 - ex.first_stage_val)

    trained = []
    monkeypatch.setattr(ex, "run", lambda name, **kw: trained.append(kw) or {"variant": name})
    dip = {**full, "val_curve": [0.5, 0.4, 0.6, 0.55], "best_epoch": 3}  # patience 1 stops at epoch 2, best epoch 1
    assert ex.early_stopped(dip, 1, "dip") == {"variant": "dip"}  # not a model the full run scored: trained for real
    assert trained == [{"train_queries": 8, "label_noise": 0.0, "learning_rate": 3e-3, "epochs": 4,
                        "early_stopping_patience": 1, "score_test": True}]
    assert ex.early_stopped(dip, 2, "patient")["epochs_run"] == 4  # never two epochs without a better one
    with pytest.raises(ValueError, match="patience=0, must be an integer >= 1"):
        ex.early_stopped(full, 0, "none")
    with pytest.raises(ValueError, match="must be a run without early stopping"):
        ex.early_stopped({**full, "early_stopping_patience": 1}, 1, "twice")


# --------------------------------------------------------------------------------- the retriever first
def _records_04(low, diff, high):
    rows = {"BM25": (0.5, 0.2), "bi-encoder": (0.73, 10.0), "bi-encoder + fine-tuned": (0.79, 310.0),
            "fine-tuned bi-encoder": (0.81, 10.0), "fine-tuned bi-encoder + fine-tuned": (0.81 + diff, 300.0)}
    return {"table": {k: {"ndcg@10": n, "p50 ms": ms} for k, (n, ms) in rows.items()},
            "comparisons": {"fine-tuned bi-encoder + fine-tuned vs fine-tuned bi-encoder": {"low": low, "diff": diff, "high": high}}}


def test_retriever_first_says_serve_the_retriever_unless_the_reranker_pays_over_it():
    from rerank_utils.tutorial.troubleshooting import retriever_first

    table, advice = retriever_first(_records_04(-0.04, -0.006, 0.03))
    assert list(table.index)[-2:] == ["fine-tuned bi-encoder", "fine-tuned bi-encoder + fine-tuned"]
    assert table.loc["fine-tuned bi-encoder", "p50 ms"] == 10.0
    assert advice.startswith("The fine-tuned retriever alone scores 0.810") and "-0.006 [-0.040, +0.030] for 30x" in advice
    assert "Serve the fine-tuned retriever alone" in advice
    _, pays = retriever_first(_records_04(0.01, 0.03, 0.05))
    assert pays.startswith("The reranker pays over the fine-tuned retriever: +0.030") and pays.endswith("Keep both.")
    old = _records_04(0, 0, 0)
    del old["table"]["fine-tuned bi-encoder"]
    with pytest.raises(ValueError, match=r"lack \['fine-tuned bi-encoder'\]: rerun 04_evaluation"):
        retriever_first(old)
