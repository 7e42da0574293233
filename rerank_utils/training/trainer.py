"""Fine-tune a cross-encoder reranker with sentence-transformers' ``CrossEncoderTrainer``.

* :func:`fine_tune` is the one entry point: a base model, training rows, a validation set of
  first-stage candidates, and the guide's knobs (:class:`~rerank_utils.training.arguments.TrainingConfig`). It validates NDCG@10 on the
  validation queries during training, stops early, keeps the best checkpoint, saves the model with a
  model card, and returns the loss / validation history.
* :func:`~rerank_utils.training.samples.training_rows` turns a dataset plus mined negatives into the rows each
  loss consumes; :mod:`~rerank_utils.training.losses` builds the loss.
* :class:`~rerank_utils.training.guide_engine.CrossEncoderFinetuneEngine` is the guide's LlamaIndex-style facade
  over the same code, so the guide's section-6 code runs with only its import line changed.

Score scale: a model fine-tuned here with BCE predicts ``sigmoid(logit)`` in [0, 1] (sentence-transformers
sets a sigmoid activation for ``num_labels=1`` models it trains); hub rerankers such as
``cross-encoder/ms-marco-MiniLM-L-6-v2`` return raw logits (about -10…10). Pass
``activation_fn=torch.nn.Identity()`` to ``predict`` to get logits from either, or use
:func:`scores_as_probabilities` so thresholds carry across models.

Introduced in notebook ``03_fine_tuning``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from datasets import Dataset
from sentence_transformers.cross_encoder import (
    CrossEncoderTrainer,
    CrossEncoderTrainingArguments,
)
from sentence_transformers.cross_encoder.evaluation import (
    CrossEncoderRerankingEvaluator,
)
from transformers import EarlyStoppingCallback, set_seed
from transformers.trainer_callback import PrinterCallback, TrainerCallback

from rerank_utils.models.bridge import bridge_parameters, bridge_summary, is_bridge
from rerank_utils.models.loading import load_cross_encoder
from rerank_utils.models.score_memo import memo_raw_scores
from rerank_utils.models.scores import activation_of
from rerank_utils.training.arguments import TrainingConfig, _on_gpu, resolve_precision
from rerank_utils.training.eta import EtaLog
from rerank_utils.training.losses import _make_loss
from rerank_utils.training.micro_batches import sorted_micro_batches
from rerank_utils.training.samples import _pairs_in

logger = logging.getLogger(__name__)


VAL_METRIC = "eval_val_ndcg@10"  # what the Trainer logs for our validation evaluator (named "val")


# ------------------------------------------------------------------------------------------- training
@dataclass
class FineTuneResult:
    output_dir: Path
    history: list[dict]  # the Trainer's log history: train loss, validation metrics, epochs, steps
    best_metric: float | None
    best_checkpoint: str | None
    train_seconds: float
    train_rows: int
    pairs_per_second: float
    config: TrainingConfig
    model: Any = field(default=None, repr=False)
    world_size: int = 1  # processes that trained together (torchrun / accelerate launch: data parallel)
    optimizer_steps: int = 0
    #: ``(epoch, seconds since training began)`` at the end of each validation: what stopping there would have cost
    validation_seconds: list[tuple[float, float]] = field(default_factory=list)

    def curves(self) -> dict[str, list[tuple[float, float]]]:
        """``{"train_loss": [(epoch, loss)], "val_ndcg@10": [(epoch, value)]}`` from the history."""
        loss = [(h["epoch"], h["loss"]) for h in self.history if "loss" in h and "epoch" in h]
        val = [(h["epoch"], h[VAL_METRIC]) for h in self.history if VAL_METRIC in h and "epoch" in h]
        return {"train_loss": loss, "val_ndcg@10": val}


def fine_tune(
    base_model: str | Any,
    train_rows: Sequence[dict],
    output_dir: str | os.PathLike,
    config: TrainingConfig | None = None,
    val_samples: Sequence[dict] | None = None,
    device: str | None = None,
    resume_from_checkpoint: str | bool | None = None,
    show_progress: bool = True,
    card: dict | None = None,
    log: Callable[[str], None] | None = None,
    keep_checkpoints: bool = False,
) -> FineTuneResult:
    """Fine-tune ``base_model`` (a name for :func:`rerank_utils.models.loading.load_cross_encoder`, or a loaded
    ``CrossEncoder``) on ``train_rows`` (from :func:`~rerank_utils.training.samples.training_rows`) and save it to ``output_dir``.

    With ``val_samples`` (from :func:`~rerank_utils.training.samples.reranking_samples`) the model is validated (NDCG@10 of reranking the
    validation queries' candidates) every epoch or ``eval_steps``; training stops early after
    ``early_stopping_patience`` evaluations without improvement, and the best checkpoint is the one saved.
    ``resume_from_checkpoint``: a checkpoint folder, or ``True`` for the last one in ``output_dir/checkpoints``.
    The checkpoints (weights, optimiser and scheduler states: about 260 MB each for MiniLM-L6) are there to resume a
    training that was cut off; once the model is saved they are deleted (a whole ``cpu`` tutorial run left 4.9 GB of
    them, the smoke run 2.6 GB), unless ``keep_checkpoints`` (to train on from a finished run, or read an epoch other
    than the best); ``best_checkpoint`` still names the one that was kept.
    ``card``: extra facts (data, base model description, metrics) written into the saved model card.
    ``log``: where to write a progress line per epoch and per minute (:class:`~rerank_utils.training.eta.EtaLog`).
    """
    config = (config or TrainingConfig()).validate()
    rows = list(train_rows)
    if not rows:
        raise ValueError("fine_tune: no training rows")
    output_dir = Path(output_dir)
    ckpt_dir = output_dir / "checkpoints"
    set_seed(config.seed)
    is_name = isinstance(base_model, (str, os.PathLike))
    model = load_cross_encoder(base_model, device=device, max_length=config.max_length) if is_name else base_model
    loss = _make_loss(model, config, rows)
    if config.sorted_micro_batch and hasattr(loss, "mini_batch_size"):
        loss.mini_batch_size = -1  # a listwise loss passes the whole batch in one call; the sorted micro-batches split it
    fp16, bf16 = resolve_precision(config.precision, device)
    total_steps = math.ceil(len(rows) / (config.batch_size * config.gradient_accumulation_steps)) * config.epochs
    if config.warmup_steps is not None and config.warmup_steps >= total_steps:
        logger.warning(
            "warmup_steps=%d >= the %d optimiser steps of this run: the learning rate never reaches %g. "
            "Use fewer warm-up steps (about 10%% of the total) or warmup_ratio.",
            config.warmup_steps, total_steps, config.learning_rate,
        )

    evaluator = _MemoisedRerankingEvaluator(
        samples=list(val_samples), at_k=10, always_rerank_positives=False, name="val", batch_size=64, write_csv=False
    ) if val_samples else None
    strategy = "steps" if config.eval_steps else "epoch"
    args = CrossEncoderTrainingArguments(
        output_dir=str(ckpt_dir), num_train_epochs=config.epochs, per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay, lr_scheduler_type=config.lr_scheduler_type,
        # transformers 5: an int is a number of steps, a float < 1 a ratio of the total steps
        warmup_steps=config.warmup_steps if config.warmup_steps is not None else config.warmup_ratio,
        fp16=fp16, bf16=bf16, seed=config.seed, data_seed=config.seed,
        eval_strategy=strategy if evaluator else "no", eval_steps=config.eval_steps,
        save_strategy=strategy if evaluator else "epoch", save_steps=config.eval_steps, save_total_limit=config.save_total_limit,
        load_best_model_at_end=evaluator is not None, metric_for_best_model=VAL_METRIC if evaluator else None,
        greater_is_better=True if evaluator else None, logging_steps=config.logging_steps, logging_first_step=True,
        report_to="none", disable_tqdm=not show_progress, use_cpu=device == "cpu",
        dataloader_pin_memory=_on_gpu(device),  # pinned memory only helps a GPU
        # data parallel (torchrun / accelerate launch): every parameter takes part in every forward pass, and
        # the default search for unused ones makes DDP mark the scoring head ready twice (a RuntimeError)
        ddp_find_unused_parameters=False,
    )
    clock = _ValidationClock()
    callbacks = [clock, *([EtaLog(log)] if log else [])]
    if evaluator and config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = _Trainer(bridge_lr=config.bridge_learning_rate, model=model, args=args, train_dataset=Dataset.from_list(rows),
                       loss=loss, evaluator=evaluator, callbacks=callbacks)
    if not show_progress:  # no per-step log dicts printed either
        trainer.remove_callback(PrinterCallback)
    if resume_from_checkpoint is True and not any(ckpt_dir.glob("checkpoint-*")):
        raise FileNotFoundError(f"resume_from_checkpoint=True but {ckpt_dir} holds no checkpoint-* folder")
    t0 = clock.t0 = time.perf_counter()
    with sorted_micro_batches(model, config.sorted_micro_batch):
        trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    seconds = time.perf_counter() - t0

    state = trainer.state
    result = FineTuneResult(
        output_dir=output_dir, history=list(state.log_history), best_metric=state.best_metric,
        best_checkpoint=state.best_model_checkpoint, train_seconds=seconds, train_rows=len(rows),
        pairs_per_second=_pairs_in(rows, config.loss) * state.epoch / seconds if seconds > 0 else math.nan, config=config,
        model=model, world_size=trainer.args.world_size, optimizer_steps=state.global_step, validation_seconds=clock.marks,
    )
    # Under torchrun / accelerate launch every process holds the same weights after training: one writes.
    if trainer.is_world_process_zero():
        save_model(model, output_dir, result, card)
    trainer.accelerator.wait_for_everyone()
    if not keep_checkpoints and trainer.is_world_process_zero():
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return result


class _MemoScorer:
    """The model as the validation evaluator sees it: ``predict`` through the score memo, everything else the
    model's own."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def predict(self, pairs, batch_size: int = 32, **_options):
        return activation_of(self._model)(memo_raw_scores(self._model, [tuple(p) for p in pairs], batch_size=batch_size))


class _MemoisedRerankingEvaluator(CrossEncoderRerankingEvaluator):
    """sentence-transformers' reranking evaluator whose scores are kept in the score memo
    (:mod:`~rerank_utils.models.score_memo`, keyed by the weights at that epoch): the kept epoch's scores of the
    validation candidates are what :func:`~rerank_utils.training.recipes.train_recipe`'s calibration and every later
    evaluation of the same candidates read back instead of scoring them again (issue 15). Its ranking scores are
    computed in float64 from the raw scores, as everywhere in the package, so saturated sigmoids do not tie.
    Hand-written because the evaluator calls ``model.predict`` and keeps nothing."""

    def __call__(self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        return super().__call__(_MemoScorer(model), output_path, epoch, steps)


class _ValidationClock(TrainerCallback):
    """The seconds from ``t0`` (where ``train_seconds`` starts) to the end of each validation, so that a reader of one
    run can say what the same run stopped at an earlier epoch cost (notebook 12's early stopping)."""

    def __init__(self):
        self.marks: list[tuple[float, float]] = []
        self.t0 = time.perf_counter()

    def on_evaluate(self, args, state, control, **kwargs):
        self.marks.append((float(state.epoch or 0.0), time.perf_counter() - self.t0))


class _Trainer(CrossEncoderTrainer):
    """``CrossEncoderTrainer`` that gives a bridge reranker's biases and scale their own learning rate
    (``TrainingConfig.bridge_learning_rate``, no weight decay); any other model trains exactly as before."""

    def __init__(self, *args, bridge_lr: float = 5e-2, **kwargs):
        self._bridge_lr = bridge_lr
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model=None):
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        special = bridge_parameters(self.model if model is None else model)
        if fresh and special:  # move them out of the default groups into their own
            ids = {id(p) for p in special}
            for group in optimizer.param_groups:
                group["params"] = [p for p in group["params"] if id(p) not in ids]
            optimizer.add_param_group({"params": special, "weight_decay": 0.0, "lr": self._bridge_lr})
        return optimizer


def save_model(model, output_dir: str | os.PathLike, result: FineTuneResult, card: dict | None = None) -> Path:
    """Save the model and write our facts into its model card (README.md) and ``training.json``."""
    output_dir, card = Path(output_dir), card or {}
    model.save_pretrained(str(output_dir))
    facts = {
        "base_model": card.get("base_model"),
        "data": card.get("data"),
        "hyper_parameters": asdict(result.config),
        "best_validation_ndcg@10": result.best_metric,
        "best_checkpoint": result.best_checkpoint,
        "train_seconds": round(result.train_seconds, 1),
        "train_rows": result.train_rows,
        "training_pairs_per_second": round(result.pairs_per_second, 2),
        "world_size": result.world_size,
        "optimizer_steps": result.optimizer_steps,
        "curves": result.curves(),  # train loss and validation NDCG@10 by epoch
        "score_scale": "sigmoid(logit) in [0, 1] from predict(); logits with activation_fn=torch.nn.Identity()",
        **{k: v for k, v in card.items() if k not in ("base_model", "data")},
    }
    if is_bridge(model):
        facts["score_scale"] = "scale x cosine of the mean-pooled query and passage tokens (identity activation)"
        facts["bridge"] = bridge_summary(model)
    (output_dir / "training.json").write_text(json.dumps(facts, indent=2, default=str), encoding="utf-8")
    readme = output_dir / "README.md"
    lines = ["", "## rerank-finetune", "",
             "Fine-tuned with `rerank_utils.training.trainer.fine_tune` (sentence-transformers `CrossEncoderTrainer`).",
             "", "| fact | value |", "|---|---|"]
    for k, v in facts.items():
        if k != "curves":  # in training.json; too long for a table row
            text = json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)
            lines.append(f"| {k} | {text.replace('|', '/')} |")
    prior = readme.read_text(encoding="utf-8") if readme.is_file() else f"# {output_dir.name}\n"
    readme.write_text(prior.rstrip("\n") + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return output_dir


def scores_as_probabilities(model, pairs: Sequence[tuple[str, str]], batch_size: int = 32):
    """Scores in [0, 1] for any cross-encoder: ``sigmoid(logit)``, whatever activation the model keeps."""
    logits = model.predict(list(pairs), batch_size=batch_size, activation_fn=torch.nn.Identity(), show_progress_bar=False)
    return torch.sigmoid(torch.as_tensor(logits, dtype=torch.float32)).numpy()
