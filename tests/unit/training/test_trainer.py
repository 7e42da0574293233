"""Fine-tuning on a tiny random BERT the tests build: rows per loss, the loss falls, the best checkpoint
is kept, resume continues, the guide's engine facade with good and broken records."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from rerank_utils.data.records import DataValidationError, RetrievalDataset
from rerank_utils.models import score_memo
from rerank_utils.models.loading import load_cross_encoder
from rerank_utils.models.precision import cpu_has_bf16
from rerank_utils.retrieval.reranking import rerank_run
from rerank_utils.training.arguments import TrainingConfig, resolve_precision
from rerank_utils.training.guide_engine import CrossEncoderFinetuneEngine
from rerank_utils.training.samples import (
    reranking_samples,
    samples_from_triples,
    training_rows,
)
from rerank_utils.training.trainer import fine_tune, scores_as_probabilities

WORDS = "building permit law contract cost tax house roof water deduction".split()


def toy_ds(n_queries=12, seed=0) -> RetrievalDataset:
    """Each query is one word; its positive passage repeats it; other passages hold other words."""
    rng = random.Random(seed)
    corpus = {f"d{i}": " ".join([w] * 3 + rng.sample([x for x in WORDS if x != w], 2)) for i, w in enumerate(WORDS)}
    queries = {f"q{i}": f"what is the {WORDS[i % len(WORDS)]}" for i in range(n_queries)}
    qrels = {f"q{i}": {f"d{i % len(WORDS)}": 1.0} for i in range(n_queries)}
    return RetrievalDataset(corpus, queries, qrels)


def negs(ds, n=3):
    return {q: [d for d in ds.corpus if d not in ds.qrels[q]][:n] for q in ds.queries}


def test_training_rows_per_loss():
    ds = toy_ds(4)
    n = negs(ds)
    bce = training_rows(ds, n, "bce")
    assert len(bce) == 4 * 4 and sum(r["label"] for r in bce) == 4
    assert list(bce[0]) == ["query", "passage", "label"]
    mnrl = training_rows(ds, n, "mnrl")
    assert len(mnrl) == 4 and list(mnrl[0]) == ["query", "positive", "negative_1", "negative_2", "negative_3"]
    lam = training_rows(ds, n, "lambda")
    assert len(lam) == 4 and lam[0]["labels"] == [1.0, 0.0, 0.0, 0.0] and len(lam[0]["docs"]) == 4
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        training_rows(ds, n, "hinge")


def test_reranking_samples_keep_the_first_stage_realistic():
    ds = toy_ds(3)
    fs = {"q0": ["d5", "d0", "d7"], "q1": ["d5", "d6"], "q9": ["d1"]}
    s = reranking_samples(ds, fs, top_k=2)
    assert [x["query"] for x in s] == [ds.queries["q0"], ds.queries["q1"]]
    assert s[0]["documents"] == [ds.corpus["d5"], ds.corpus["d0"]] and s[0]["positive"] == [ds.corpus["d0"]]
    assert ds.corpus["d1"] not in s[1]["documents"]  # a missed positive is not inserted


def test_config_validation_names_the_bad_fields():
    with pytest.raises(ValueError, match=r"loss='hinge'.*learning_rate=5"):
        TrainingConfig(loss="hinge", learning_rate=5).validate()


def test_half_precision_on_cpu_is_bf16_only_where_native(monkeypatch):
    from rerank_utils.training import arguments

    assert resolve_precision("auto", "cpu") == (False, False)  # fp32 until bf16 training's NDCG is measured
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        resolve_precision("fp16", "cpu")
    monkeypatch.setattr(arguments, "cpu_has_bf16", lambda: True)
    assert resolve_precision("bf16", "cpu") == (False, True) and resolve_precision("auto", "cpu") == (False, False)
    monkeypatch.setattr(arguments, "cpu_has_bf16", lambda: False)
    with pytest.raises(ValueError, match="emulated .* 13-15x slower"):
        resolve_precision("bf16", "cpu")


def yes_no_rows(n=48, seed=0):
    """A task a tiny random BERT learns in a few dozen steps: relevant passages say "yes", others "no"."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        w = rng.choice(WORDS)
        rows.append({"query": f"what is the {w}", "passage": f"{w} yes", "label": 1.0})
        rows.append({"query": f"what is the {w}", "passage": f"{w} no", "label": 0.0})
    val = [
        {"query": f"what is the {w}", "positive": [f"{w} yes"], "documents": [f"{w} no", f"{o} no", f"{w} yes"]}
        for w, o in zip(WORDS[:5], WORDS[5:])
    ]
    return rows, val


@pytest.fixture(scope="module")
def trained(tiny_bert_dir, tmp_path_factory):
    rows, val = yes_no_rows()
    out = tmp_path_factory.mktemp("ft") / "model"
    cfg = TrainingConfig(epochs=4, batch_size=8, learning_rate=3e-3, max_length=16, logging_steps=2, warmup_ratio=0.0,
                         pos_weight=1.0, early_stopping_patience=None, save_total_limit=5)
    result = fine_tune(str(tiny_bert_dir), rows, out, cfg, val_samples=val, device="cpu", show_progress=False,
                       card={"base_model": "tiny-bert", "data": "toy"}, keep_checkpoints=True)
    return result, rows, val, cfg, str(tiny_bert_dir)


def test_fine_tune_learns_and_keeps_the_best_checkpoint(trained):
    result, rows, *_ = trained
    losses = [l for _, l in result.curves()["train_loss"]]
    assert len(losses) >= 20 and np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])  # the loss falls (0.69 -> ~0.3)
    vals = [v for _, v in result.curves()["val_ndcg@10"]]
    assert len(vals) == 4 and result.best_metric == pytest.approx(max(vals))
    first_best_epoch = vals.index(max(vals)) + 1
    assert result.best_checkpoint.endswith(f"checkpoint-{first_best_epoch * 12}")  # 96 rows / 8 = 12 steps an epoch
    card = (result.output_dir / "README.md").read_text()
    assert "## rerank-finetune" in card and "tiny-bert" in card and "best_validation_ndcg@10" in card
    facts = json.loads((result.output_dir / "training.json").read_text())
    assert facts["hyper_parameters"]["learning_rate"] == 3e-3 and facts["train_rows"] == len(rows)
    assert [v for _, v in facts["curves"]["val_ndcg@10"]] == pytest.approx(vals) and "curves" not in card
    pairs = [("what is the roof", "roof yes"), ("what is the roof", "roof no")]
    yes, no = result.model.predict(pairs)
    assert yes > no  # it learned the task


def test_the_kept_epochs_validation_scores_are_read_back_not_scored_again(tiny_bert_dir, tmp_path):
    ds = toy_ds(n_queries=10)
    # each query's positive and 4 other passages (the evaluator skips a query without a positive among them)
    first_stage = {q: {d: (1.0 if d in ds.qrels[q] else float(-i)) for i, d in enumerate(ds.corpus)} for q in ds.queries}
    cfg = TrainingConfig(loss="lambda", epochs=2, batch_size=4, learning_rate=1e-3, max_length=16, warmup_ratio=0.0,
                         early_stopping_patience=None, save_total_limit=3)
    score_memo.forget()
    result = fine_tune(str(tiny_bert_dir), training_rows(ds, negs(ds), "lambda"), tmp_path / "m", cfg,
                       val_samples=reranking_samples(ds, first_stage, top_k=5), device="cpu", show_progress=False)
    pairs = 10 * 5
    assert score_memo.counts() == {"scored": 2 * pairs, "from_memory": 0}  # each epoch's weights scored the candidates once
    reranked = rerank_run(result.model, ds, first_stage, top_k=5, memo=True)  # the kept epoch's weights: all read back
    assert score_memo.counts() == {"scored": 2 * pairs, "from_memory": pairs}
    fresh = rerank_run(result.model, ds, first_stage, top_k=5)  # computed now
    for q in ds.queries:
        assert reranked[q] == pytest.approx(fresh[q], abs=1e-5)
    score_memo.forget()


def test_saved_model_reloads_with_the_same_scores(trained):
    from sentence_transformers import CrossEncoder

    result, *_ = trained
    pairs = [("what is the roof", "roof yes"), ("what is the roof", "roof no")]
    again = CrossEncoder(str(result.output_dir))
    assert np.allclose(again.predict(pairs), result.model.predict(pairs), atol=1e-5)
    probs = scores_as_probabilities(again, pairs)
    assert ((0 <= probs) & (probs <= 1)).all()


def test_resume_continues_from_the_saved_step(trained, tmp_path):
    result, rows, val, cfg, base = trained
    import shutil

    out = tmp_path / "resumed"
    shutil.copytree(result.output_dir / "checkpoints" / "checkpoint-24", out / "checkpoints" / "checkpoint-24")
    cfg2 = TrainingConfig(**{**cfg.__dict__, "epochs": 3})
    resumed = fine_tune(base, rows, out, cfg2, val_samples=val, device="cpu", show_progress=False,
                        resume_from_checkpoint=True)
    steps = [h["step"] for h in resumed.history if "loss" in h]
    # the history restored from the checkpoint (steps <= 24) continues with new steps up to 36, none repeated
    assert max(steps) == 36 and steps == sorted(set(steps)) and any(24 < st < 36 for st in steps)
    assert [h["epoch"] for h in resumed.history if "eval_val_ndcg@10" in h][-1] == 3.0


def test_checkpoints_go_once_the_model_is_saved_and_stay_when_training_is_cut_off(tiny_bert_dir, tmp_path, monkeypatch):
    """They hold optimiser states (about 260 MB each for MiniLM-L6): a finished training keeps only its model."""
    from rerank_utils.training import trainer as trainer_module

    ds = toy_ds(4)
    rows = training_rows(ds, negs(ds), "bce")
    cfg = TrainingConfig(epochs=2, batch_size=8, max_length=16, early_stopping_patience=None)
    done = fine_tune(str(tiny_bert_dir), rows, tmp_path / "done", cfg, device="cpu", show_progress=False)
    assert not (tmp_path / "done" / "checkpoints").exists() and (tmp_path / "done" / "training.json").is_file()
    pairs = [("what is the roof", "roof yes"), ("what is the roof", "roof no")]
    assert np.allclose(load_cross_encoder(str(tmp_path / "done")).predict(pairs), done.model.predict(pairs), atol=1e-5)

    def cut_off(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "save_model", cut_off)  # stopped after training, before the model was saved
    with pytest.raises(KeyboardInterrupt):
        fine_tune(str(tiny_bert_dir), rows, tmp_path / "cut", cfg, device="cpu", show_progress=False)
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").glob("checkpoint-*"))  # there to resume from


def test_resume_without_checkpoint_is_a_clear_error(tiny_bert_dir, tmp_path):
    ds = toy_ds(2)
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        fine_tune(str(tiny_bert_dir), training_rows(ds, negs(ds), "bce"), tmp_path / "m", TrainingConfig(epochs=1),
                  device="cpu", show_progress=False, resume_from_checkpoint=True)


def test_ranking_losses_train(tiny_bert_dir, tmp_path):
    ds = toy_ds(6)
    for loss in ("lambda", "mnrl"):
        r = fine_tune(str(tiny_bert_dir), training_rows(ds, negs(ds), loss), tmp_path / loss,
                      TrainingConfig(loss=loss, epochs=1, batch_size=4, max_length=32, logging_steps=1),
                      device="cpu", show_progress=False)
        assert r.curves()["train_loss"] and all(np.isfinite(l) for _, l in r.curves()["train_loss"])


# ------------------------------------------------------------------------------------ the engine
GUIDE_TRAIN = [
    {"query": "what is the roof", "passage": "roof roof roof tax law", "score": 1},
    {"query": "what is the roof", "passage": "water water water cost house", "score": 0},
    {"query": "what is the tax", "passage": "tax tax tax roof permit", "score": 1},
    {"query": "what is the tax", "passage": "permit permit permit house law", "score": 0},
]


@dataclass
class LlamaIndexSample:  # the shape of llama-index-finetuning's CrossEncoderFinetuningDatasetSample
    query: str
    context: str
    score: int


def test_engine_runs_the_guides_code(tiny_bert_dir, tmp_path):
    from llama_index.core.postprocessor import SentenceTransformerRerank
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    # The guide's section 6, with only the import changed (and a local model instead of a hub id).
    finetune_engine = CrossEncoderFinetuneEngine(
        train_dataset=GUIDE_TRAIN,
        val_dataset=[LlamaIndexSample(r["query"], r["passage"], r["score"]) for r in GUIDE_TRAIN],
        model_id=str(tiny_bert_dir),
        model_output_path=str(tmp_path / "finetuned_reranker"),
        batch_size=2,
        epochs=2,
        learning_rate=2e-5,
        warmup_steps=1,
        show_progress=False,
    )
    finetune_engine.finetune()
    reranker = finetune_engine.get_finetuned_model(top_n=1)
    assert isinstance(reranker, SentenceTransformerRerank)
    nodes = [NodeWithScore(node=TextNode(text=r["passage"]), score=0.5) for r in GUIDE_TRAIN[:2]]
    out = reranker.postprocess_nodes(nodes, query_bundle=QueryBundle("what is the roof"))
    assert len(out) == 1 and out[0].node.text in {r["passage"] for r in GUIDE_TRAIN[:2]}
    assert finetune_engine.result.best_metric is not None  # validated on the val set


def test_engine_rejects_broken_records_with_the_validators_errors(tiny_bert_dir, tmp_path):
    broken = GUIDE_TRAIN[:1] + [{"query": "q", "passage": "  ", "score": 1}, {"query": "q", "passage": "p", "score": 3}]
    with pytest.raises(DataValidationError) as err:
        CrossEncoderFinetuneEngine(train_dataset=broken, model_id=str(tiny_bert_dir), model_output_path=str(tmp_path))
    msg = str(err.value)
    assert "train_dataset:record 1" in msg and "'passage' is empty" in msg
    assert "train_dataset:record 2" in msg and "score" in msg
    with pytest.raises(ValueError, match="needs train_dataset"):
        CrossEncoderFinetuneEngine(model_id=str(tiny_bert_dir))


def test_engine_offline_errors(tiny_bert_dir, tmp_path, monkeypatch):
    engine = CrossEncoderFinetuneEngine(train_dataset=GUIDE_TRAIN, model_id=str(tiny_bert_dir),
                                        model_output_path=str(tmp_path / "m"))
    with pytest.raises(FileNotFoundError, match="call finetune\\(\\) first"):
        engine.get_finetuned_model()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConnectionError, match="needs the Hugging Face hub.*HF_HUB_OFFLINE=1"):
        engine.push_to_hub("me/my-reranker")


def test_engine_with_a_hub_model_offline_fails_fast(tmp_path, monkeypatch):
    from rerank_utils.models.resolve import ModelNotAvailableOffline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = CrossEncoderFinetuneEngine(train_dataset=GUIDE_TRAIN, model_output_path=str(tmp_path / "m"))
    with pytest.raises(ModelNotAvailableOffline, match="`gpu` profile"):
        engine.finetune()


def test_samples_from_triples_groups_by_query():
    s = samples_from_triples([dict(r, score=float(r["score"])) for r in GUIDE_TRAIN])
    assert len(s) == 2 and s[0]["positive"] == ["roof roof roof tax law"] and len(s[0]["documents"]) == 2


def test_fine_tune_and_engine_reject_what_they_cannot_train(tiny_bert_dir, tmp_path):
    with pytest.raises(ValueError, match="fine_tune: no training rows"):
        fine_tune(str(tiny_bert_dir), [], tmp_path / "m", device="cpu")
    with pytest.raises(ValueError, match="loss must be 'bce'"):
        CrossEncoderFinetuneEngine(train_dataset=GUIDE_TRAIN, model_id=str(tiny_bert_dir), loss="lambda")


def test_warmup_longer_than_the_run_is_warned(tiny_bert_dir, tmp_path, caplog):
    rows, _ = yes_no_rows(8)
    with caplog.at_level("WARNING", logger="rerank_utils.training"):
        fine_tune(str(tiny_bert_dir), rows, tmp_path / "m", TrainingConfig(epochs=1, batch_size=8, warmup_steps=100, max_length=16),
                  device="cpu", show_progress=False)
    assert "warmup_steps=100 >= the 2 optimiser steps" in caplog.text


@pytest.mark.skipif(not cpu_has_bf16(), reason="bf16 training on the CPU needs native bf16 (AVX512-BF16 or AMX); "
                                               "elsewhere resolve_precision refuses it (tested above)")
def test_bf16_training_on_a_cpu_that_has_it_learns_and_saves_fp32_weights(tiny_bert_dir, tmp_path):
    rows, val = yes_no_rows()
    cfg = TrainingConfig(epochs=4, batch_size=8, learning_rate=3e-3, max_length=16, logging_steps=2, warmup_ratio=0.0,
                         pos_weight=1.0, early_stopping_patience=None, precision="bf16")
    result = fine_tune(str(tiny_bert_dir), rows, tmp_path / "bf16", cfg, val_samples=val, device="cpu", show_progress=False)
    losses = [l for _, l in result.curves()["train_loss"]]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])  # autocast trains as fp32 does on this task
    assert {p.dtype for p in result.model.model.parameters()} == {torch.float32}  # autocast: the weights stay fp32
    yes, no = result.model.predict([("what is the roof", "roof yes"), ("what is the roof", "roof no")])
    assert yes > no
