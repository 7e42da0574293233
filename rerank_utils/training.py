"""Fine-tune a cross-encoder reranker with sentence-transformers' ``CrossEncoderTrainer``.

* :func:`fine_tune` is the one entry point: a base model, training rows, a validation set of
  first-stage candidates, and the guide's knobs (:class:`TrainingConfig`). It validates NDCG@10 on the
  validation queries during training, stops early, keeps the best checkpoint, saves the model with a
  model card, and returns the loss / validation history.
* :func:`training_rows` turns a dataset plus mined negatives into the rows each loss consumes.
* :class:`CrossEncoderFinetuneEngine` is the guide's LlamaIndex-style facade over the same code, so the
  guide's section-6 code runs with only its import line changed.

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
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .data import RetrievalDataset, validate_triples
from .evaluation import rank

logger = logging.getLogger(__name__)

LOSSES = ("bce", "mnrl", "lambda", "listnet", "softmax")
LIST_LOSSES = ("lambda", "listnet", "softmax")  # rows {query, docs, labels}: one list per query
VAL_METRIC = "eval_val_ndcg@10"  # what the Trainer logs for our validation evaluator (named "val")


@dataclass
class TrainingConfig:
    """The guide's hyper-parameters (section 12) and a few more. Defaults follow the guide."""

    loss: str = "bce"  # "bce" (BinaryCrossEntropy with pos_weight), "mnrl", "lambda" (LambdaLoss), "listnet", "softmax"
    epochs: int = 3
    batch_size: int = 16  # the guide: 16 (8 on an 8 GB GPU)
    learning_rate: float = 2e-5  # the guide: 2e-5 (1e-5 … 5e-5)
    warmup_ratio: float = 0.1  # the guide: about 10 % of the steps
    warmup_steps: int | None = None  # absolute warm-up steps; overrides warmup_ratio (the guide's engine: 100)
    weight_decay: float = 0.01
    max_length: int = 256  # the guide: 512 (or 256)
    gradient_accumulation_steps: int = 1
    pos_weight: float | None = None  # BCE: weight of positives; None = negatives per positive in the data
    mnrl_scale: float = 10.0
    eval_steps: int | None = None  # validate every N optimiser steps; None = once per epoch
    early_stopping_patience: int | None = 2  # evaluations without improvement before stopping; None = never
    seed: int = 42
    precision: str = "auto"  # "auto" (bf16/fp16 only on a GPU that supports it), "fp32", "fp16", "bf16"
    logging_steps: int = 10
    save_total_limit: int = 2
    lr_scheduler_type: str = "linear"
    # bridge reranker only (rerank_utils.bridge): learning rate of its cross-segment biases and scale,
    # which start far from where gradients of size 2e-5 could move them in a few hundred steps
    bridge_learning_rate: float = 5e-2

    def validate(self) -> "TrainingConfig":
        problems = []
        if self.loss not in LOSSES:
            problems.append(f"loss={self.loss!r}: choose one of {', '.join(LOSSES)}")
        for name in ("epochs", "batch_size", "max_length", "gradient_accumulation_steps", "logging_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                problems.append(f"{name}={v!r}: a positive integer")
        if not (0 < self.learning_rate < 1):
            problems.append(f"learning_rate={self.learning_rate!r}: a number in (0, 1), e.g. 2e-5")
        if not (0 < self.bridge_learning_rate < 10):
            problems.append(f"bridge_learning_rate={self.bridge_learning_rate!r}: a number in (0, 10), e.g. 5e-2")
        if not (0 <= self.warmup_ratio < 1):
            problems.append(f"warmup_ratio={self.warmup_ratio!r}: a share of the steps in [0, 1)")
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            problems.append(f"precision={self.precision!r}: auto, fp32, fp16 or bf16")
        if problems:
            raise ValueError("invalid TrainingConfig: " + "; ".join(problems))
        return self


def _on_gpu(device: str | None) -> bool:
    import torch

    return torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))


def resolve_precision(precision: str, device: str | None = None) -> tuple[bool, bool]:
    """``(fp16, bf16)`` flags for the Trainer. Half precision only on a CUDA GPU that supports it:
    on a CPU it is slower than fp32 (see RESEARCH / notebook 12), so "auto" means fp32 there."""
    import torch

    on_gpu = _on_gpu(device)
    if precision == "fp32":
        return False, False
    if precision in ("fp16", "bf16") and not on_gpu:
        raise ValueError(f"precision={precision!r} needs a CUDA GPU; this run is on the CPU: use 'auto' or 'fp32'")
    if precision == "fp16":
        return True, False
    if precision == "bf16":
        if not torch.cuda.is_bf16_supported():
            raise ValueError("this GPU does not support bf16: use 'fp16' or 'auto'")
        return False, True
    if on_gpu:  # auto
        return (False, True) if torch.cuda.is_bf16_supported() else (True, False)
    return False, False


# ----------------------------------------------------------------------------------------------- data
def training_rows(ds: RetrievalDataset, negatives: dict[str, list[str]], loss: str = "bce") -> list[dict]:
    """Rows in the shape each loss reads (columns in order; the label column is ``label``/``labels``).

    * ``bce``: ``{query, passage, label}``, one per (query, positive) and (query, negative).
    * ``mnrl``: ``{query, positive, negative_1, …, negative_N}``, one per (query, positive); N is the
      number of negatives most queries have; a query with fewer cannot fill a row and is skipped, with a
      warning that counts it (nothing is dropped silently).
    * ``lambda`` / ``listnet`` / ``softmax``: ``{query, docs, labels}``, one list per query (positives then
      negatives).
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    rows: list[dict] = []
    qids = [q for q in ds.queries if ds.positives(q)]
    if loss == "bce":
        for q in qids:
            rows += [{"query": ds.queries[q], "passage": ds.corpus[d], "label": 1.0} for d in ds.positives(q)]
            rows += [{"query": ds.queries[q], "passage": ds.corpus[d], "label": 0.0} for d in negatives.get(q, [])]
    elif loss == "mnrl":
        counts = Counter(len(negatives.get(q, [])) for q in qids)
        n = max(counts, key=lambda k: (counts[k], k)) if counts else 0
        short = [q for q in qids if len(negatives.get(q, [])) < n]
        if short:
            warnings.warn(f"training_rows(loss='mnrl'): {len(short)} queries skipped (fewer than {n} negatives)", UserWarning, stacklevel=2)
        for q in qids:
            if q in short:
                continue
            for p in ds.positives(q):
                row = {"query": ds.queries[q], "positive": ds.corpus[p]}
                row.update({f"negative_{i + 1}": ds.corpus[d] for i, d in enumerate(negatives.get(q, [])[:n])})
                rows.append(row)
    else:
        for q in qids:
            pos, neg = ds.positives(q), negatives.get(q, [])
            rows.append(
                {
                    "query": ds.queries[q],
                    "docs": [ds.corpus[d] for d in pos + neg],
                    "labels": [1.0] * len(pos) + [0.0] * len(neg),
                }
            )
    return rows


def reranking_samples(ds: RetrievalDataset, first_stage: dict[str, dict], top_k: int = 20) -> list[dict]:
    """Validation samples for ``CrossEncoderRerankingEvaluator``: each query's first-stage top-``top_k``
    as ``documents`` and its positives' texts as ``positive`` (a positive the first stage missed is NOT
    added, so the score is the realistic one of reranking that first stage)."""
    samples = []
    for q in ds.queries:
        if q not in first_stage or not ds.positives(q):
            continue
        samples.append(
            {
                "query": ds.queries[q],
                "positive": [ds.corpus[d] for d in ds.positives(q)],
                "documents": [ds.corpus[d] for d in rank(first_stage[q])[:top_k]],
            }
        )
    return samples


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

    def curves(self) -> dict[str, list[tuple[float, float]]]:
        """``{"train_loss": [(epoch, loss)], "val_ndcg@10": [(epoch, value)]}`` from the history."""
        loss = [(h["epoch"], h["loss"]) for h in self.history if "loss" in h and "epoch" in h]
        val = [(h["epoch"], h[VAL_METRIC]) for h in self.history if VAL_METRIC in h and "epoch" in h]
        return {"train_loss": loss, "val_ndcg@10": val}


def _pairs_in(rows: Sequence[dict], loss: str) -> int:
    if loss == "bce":
        return len(rows)
    if loss == "mnrl":
        return sum(len(r) - 1 for r in rows)
    if loss not in LIST_LOSSES:
        raise ValueError(f"unknown loss {loss!r}")
    return sum(len(r["docs"]) for r in rows)


def _make_loss(model, config: TrainingConfig, rows: Sequence[dict]):
    import torch
    from sentence_transformers.cross_encoder import losses

    if config.loss == "bce":
        pos = sum(1 for r in rows if r["label"] >= 0.5)
        neg = len(rows) - pos
        weight = config.pos_weight if config.pos_weight is not None else (neg / pos if pos else 1.0)
        return losses.BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(weight)))
    if config.loss == "mnrl":
        n_neg = len(rows[0]) - 2 if rows else 0
        return losses.MultipleNegativesRankingLoss(model, num_negatives=n_neg, scale=config.mnrl_scale)
    if config.loss == "lambda":
        return losses.LambdaLoss(model)
    if config.loss == "softmax":
        return ListwiseSoftmaxLoss(model)
    return losses.ListNetLoss(model)


def _listwise_softmax_loss_class():
    from sentence_transformers.cross_encoder.losses import ListNetLoss

    class ListwiseSoftmaxLoss(ListNetLoss):
        """Cross-entropy between ``softmax(scores)`` over each query's list and ``labels / sum(labels)``.

        With one positive per list this is the softmax (InfoNCE) loss over the query's own candidates, no
        in-batch negatives. ListNet proper compares with ``softmax(labels)``, which for 0/1 labels puts only
        e/(e + n - 1) of the target on the positive (0.28 for 8 candidates); feeding ``log(labels)`` to it
        gives ``labels / sum(labels)`` instead (a label 0 becomes log 0 = -inf, i.e. probability 0).
        """

        def forward(self, inputs, labels, prompt=None, task=None):
            import torch

            logged = []
            for i, lab in enumerate(labels):
                lab = torch.as_tensor(lab, dtype=torch.float32)
                if not bool((lab > 0).any()):
                    raise ValueError(f"softmax loss: list {i} of this batch has no positive label; every list needs one")
                if bool((lab < 0).any()):
                    raise ValueError(f"softmax loss: list {i} has a negative label; labels must be >= 0")
                logged.append(torch.where(lab > 0, torch.log(lab.clamp(min=1e-30)), torch.full_like(lab, float("-inf"))))
            return super().forward(inputs, logged, prompt=prompt, task=task)

    return ListwiseSoftmaxLoss


def ListwiseSoftmaxLoss(model):  # noqa: N802 - a factory that reads like the class it builds
    """The ``softmax`` loss (see :func:`_listwise_softmax_loss_class`), built lazily so importing this module
    does not import sentence-transformers."""
    return _listwise_softmax_loss_class()(model)


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
) -> FineTuneResult:
    """Fine-tune ``base_model`` (a name for :func:`rerank_utils.models.load_cross_encoder`, or a loaded
    ``CrossEncoder``) on ``train_rows`` (from :func:`training_rows`) and save it to ``output_dir``.

    With ``val_samples`` (from :func:`reranking_samples`) the model is validated (NDCG@10 of reranking the
    validation queries' candidates) every epoch or ``eval_steps``; training stops early after
    ``early_stopping_patience`` evaluations without improvement, and the best checkpoint is the one saved.
    ``resume_from_checkpoint``: a checkpoint folder, or ``True`` for the last one in ``output_dir/checkpoints``.
    ``card``: extra facts (data, base model description, metrics) written into the saved model card.
    """
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator
    from transformers import EarlyStoppingCallback, set_seed

    from .models import load_cross_encoder

    config = (config or TrainingConfig()).validate()
    rows = list(train_rows)
    if not rows:
        raise ValueError("fine_tune: no training rows")
    output_dir = Path(output_dir)
    ckpt_dir = output_dir / "checkpoints"
    set_seed(config.seed)
    model = (
        load_cross_encoder(base_model, device=device, max_length=config.max_length)
        if isinstance(base_model, (str, os.PathLike))
        else base_model
    )
    loss = _make_loss(model, config, rows)
    fp16, bf16 = resolve_precision(config.precision, device)
    total_steps = math.ceil(len(rows) / (config.batch_size * config.gradient_accumulation_steps)) * config.epochs
    if config.warmup_steps is not None and config.warmup_steps >= total_steps:
        logger.warning(
            "warmup_steps=%d >= the %d optimiser steps of this run: the learning rate never reaches %g. "
            "Use fewer warm-up steps (about 10%% of the total) or warmup_ratio.",
            config.warmup_steps, total_steps, config.learning_rate,
        )

    evaluator = None
    if val_samples:
        evaluator = CrossEncoderRerankingEvaluator(
            samples=list(val_samples), at_k=10, always_rerank_positives=False, name="val", batch_size=64, write_csv=False
        )
    strategy = "steps" if config.eval_steps else "epoch"
    args = CrossEncoderTrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        # transformers 5: an int is a number of steps, a float < 1 a ratio of the total steps
        warmup_steps=config.warmup_steps if config.warmup_steps is not None else config.warmup_ratio,
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.lr_scheduler_type,
        fp16=fp16,
        bf16=bf16,
        seed=config.seed,
        data_seed=config.seed,
        eval_strategy=strategy if evaluator else "no",
        eval_steps=config.eval_steps,
        save_strategy=strategy if evaluator else "epoch",
        save_steps=config.eval_steps,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model=VAL_METRIC if evaluator else None,
        greater_is_better=True if evaluator else None,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=not show_progress,
        dataloader_drop_last=False,
        dataloader_pin_memory=_on_gpu(device),  # pinned memory only helps a GPU
        use_cpu=device == "cpu",
        # data parallel (torchrun / accelerate launch): every parameter takes part in every forward pass, and
        # the default search for unused ones makes DDP mark the scoring head ready twice (a RuntimeError)
        ddp_find_unused_parameters=False,
    )
    callbacks = []
    if evaluator and config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = _trainer_class(CrossEncoderTrainer)(
        bridge_lr=config.bridge_learning_rate,
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        loss=loss,
        evaluator=evaluator,
        callbacks=callbacks,
    )
    if not show_progress:  # no per-step log dicts printed either
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    if resume_from_checkpoint is True and not any(ckpt_dir.glob("checkpoint-*")):
        raise FileNotFoundError(f"resume_from_checkpoint=True but {ckpt_dir} holds no checkpoint-* folder")
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    seconds = time.perf_counter() - t0

    history = list(trainer.state.log_history)
    result = FineTuneResult(
        output_dir=output_dir,
        history=history,
        best_metric=trainer.state.best_metric,
        best_checkpoint=trainer.state.best_model_checkpoint,
        train_seconds=seconds,
        train_rows=len(rows),
        pairs_per_second=_pairs_in(rows, config.loss) * trainer.state.epoch / seconds if seconds > 0 else math.nan,
        config=config,
        model=model,
        world_size=trainer.args.world_size,
        optimizer_steps=trainer.state.global_step,
    )
    # Under torchrun / accelerate launch every process holds the same weights after training: one writes.
    if trainer.is_world_process_zero():
        save_model(model, output_dir, result, card)
    trainer.accelerator.wait_for_everyone()
    return result


def _trainer_class(base):
    """``CrossEncoderTrainer`` that gives a bridge reranker's biases and scale their own learning rate
    (``TrainingConfig.bridge_learning_rate``, no weight decay); any other model trains exactly as before."""
    from .bridge import bridge_parameters

    class Trainer(base):
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

    return Trainer


def save_model(model, output_dir: str | os.PathLike, result: FineTuneResult, card: dict | None = None) -> Path:
    """Save the model and write our facts into its model card (README.md) and ``training.json``."""
    output_dir = Path(output_dir)
    model.save_pretrained(str(output_dir))
    facts = {
        "base_model": (card or {}).get("base_model"),
        "data": (card or {}).get("data"),
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
        **{k: v for k, v in (card or {}).items() if k not in ("base_model", "data")},
    }
    from .bridge import bridge_summary, is_bridge

    if is_bridge(model):
        facts["score_scale"] = "scale x cosine of the mean-pooled query and passage tokens (identity activation)"
        facts["bridge"] = bridge_summary(model)
    (output_dir / "training.json").write_text(json.dumps(facts, indent=2, default=str), encoding="utf-8")
    readme = output_dir / "README.md"
    lines = [
        "",
        "## rerank-finetune",
        "",
        "Fine-tuned with `rerank_utils.training.fine_tune` (sentence-transformers `CrossEncoderTrainer`).",
        "",
        "| fact | value |",
        "|---|---|",
    ]
    for k, v in facts.items():
        if k == "curves":  # in training.json; too long for a table row
            continue
        text = json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)
        lines.append(f"| {k} | {text.replace('|', '/')} |")
    prior = readme.read_text(encoding="utf-8") if readme.is_file() else f"# {output_dir.name}\n"
    readme.write_text(prior.rstrip("\n") + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return output_dir


def scores_as_probabilities(model, pairs: Sequence[tuple[str, str]], batch_size: int = 32):
    """Scores in [0, 1] for any cross-encoder: ``sigmoid(logit)``, whatever activation the model keeps."""
    import torch

    logits = model.predict(list(pairs), batch_size=batch_size, activation_fn=torch.nn.Identity(), show_progress_bar=False)
    return torch.sigmoid(torch.as_tensor(logits, dtype=torch.float32)).numpy()


# ------------------------------------------------------------------------------- the guide's facade
def _as_triple(sample: Any) -> Any:
    """A guide record (dict with query/passage/score) or a LlamaIndex-style sample (query, context, score:
    an object or a dict) as a plain triple dict; anything else is returned as is for the validator."""
    if isinstance(sample, dict):
        if "context" in sample and "passage" not in sample:
            rest = {k: v for k, v in sample.items() if k != "context"}
            return {**rest, "passage": sample["context"]}
        return sample
    if all(hasattr(sample, a) for a in ("query", "context", "score")):
        return {"query": sample.query, "passage": sample.context, "score": sample.score}
    return sample


def samples_from_triples(records: Sequence[dict]) -> list[dict]:
    """Validation samples for the reranking evaluator from triples: each query's passages as
    ``documents`` and those with score >= 0.5 as ``positive`` (queries without a positive are skipped)."""
    grouped: dict[str, dict[str, list[str]]] = {}
    for r in records:
        g = grouped.setdefault(r["query"], {"positive": [], "documents": []})
        g["documents"].append(r["passage"])
        if r["score"] >= 0.5:
            g["positive"].append(r["passage"])
    return [{"query": q, **g} for q, g in grouped.items() if g["positive"]]


class CrossEncoderFinetuneEngine:
    """The guide's fine-tuning engine, working on today's libraries.

    The guide imports ``CrossEncoderFinetuneEngine`` from ``llama_index.finetuning``; that package is
    deprecated, does not import on current packages, and never had this signature. Change only the import::

        from rerank_utils.training import CrossEncoderFinetuneEngine

    ``train_dataset`` / ``val_dataset``: the guide's records ``{"query", "passage", "score"}`` or
    LlamaIndex-style samples with ``query``, ``context``, ``score``. Bad records are rejected with the
    validator's errors (record index and field). Training runs :func:`fine_tune` with BCE.
    """

    def __init__(
        self,
        train_dataset: Sequence[Any] | None = None,
        val_dataset: Sequence[Any] | None = None,
        model_id: str = "cross-encoder/ms-marco-MiniLM-L-12-v2",
        model_output_path: str = "exp_finetune",
        batch_size: int = 16,
        epochs: int = 3,
        learning_rate: float = 2e-5,
        warmup_steps: int | None = 100,
        show_progress: bool = True,
        max_length: int = 256,
        loss: str = "bce",
        weight_decay: float = 0.01,
        seed: int = 42,
        device: str | None = None,
        early_stopping_patience: int | None = 2,
        dataset: Sequence[Any] | None = None,  # the name llama-index-finetuning used for train_dataset
    ):
        if train_dataset is None:
            train_dataset = dataset
        if train_dataset is None:
            raise ValueError("CrossEncoderFinetuneEngine needs train_dataset (a list of {query, passage, score} records)")
        self.train_records, self.train_report = validate_triples(
            [_as_triple(x) for x in train_dataset], source="train_dataset", mode="strict", require_positive=False
        )
        self.val_records = None
        if val_dataset:
            self.val_records, self.val_report = validate_triples(
                [_as_triple(x) for x in val_dataset], source="val_dataset", mode="strict", require_positive=False
            )
        if loss not in ("bce",):
            raise ValueError("the engine trains on labelled pairs: loss must be 'bce' (use fine_tune for ranking losses)")
        self.model_id = model_id
        self.model_output_path = Path(model_output_path)
        self.show_progress = show_progress
        self.device = device
        self.config = TrainingConfig(
            loss=loss,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_steps=warmup_steps,
            max_length=max_length,
            weight_decay=weight_decay,
            seed=seed,
            early_stopping_patience=early_stopping_patience,
        ).validate()
        self.result: FineTuneResult | None = None

    def finetune(self) -> FineTuneResult:
        """Train and save to ``model_output_path`` (the best validation checkpoint when a val set is given)."""
        rows = [{"query": r["query"], "passage": r["passage"], "label": float(r["score"])} for r in self.train_records]
        val = samples_from_triples(self.val_records) if self.val_records else None
        self.result = fine_tune(
            self.model_id,
            rows,
            self.model_output_path,
            self.config,
            val_samples=val,
            device=self.device,
            show_progress=self.show_progress,
            card={"base_model": self.model_id, "data": f"{len(rows)} labelled pairs (guide format)"},
        )
        return self.result

    def get_finetuned_model(self, top_n: int = 3, **kwargs):
        """The fine-tuned model as a LlamaIndex node postprocessor (``SentenceTransformerRerank``)."""
        from llama_index.core.postprocessor import SentenceTransformerRerank

        if not (self.model_output_path / "config.json").is_file():
            raise FileNotFoundError(f"no fine-tuned model in {self.model_output_path}: call finetune() first")
        kwargs.setdefault("device", self.device or "cpu")
        return SentenceTransformerRerank(model=str(self.model_output_path), top_n=top_n, **kwargs)

    def push_to_hub(self, repo_id: str, private: bool = True, token: str | None = None) -> str:
        """Upload the fine-tuned model to the Hugging Face hub (needs the hub and a write token)."""
        from .models import hub_reachable, is_offline

        if not (self.model_output_path / "config.json").is_file():
            raise FileNotFoundError(f"no fine-tuned model in {self.model_output_path}: call finetune() first")
        if not hub_reachable():
            why = "offline mode is on (HF_HUB_OFFLINE=1)" if is_offline() else "the Hugging Face hub cannot be reached"
            raise ConnectionError(
                f"push_to_hub({repo_id!r}) needs the Hugging Face hub, but {why}. The model is saved in "
                f"{self.model_output_path}; copy that folder, or push it later from a machine with network access "
                "(`hf upload <repo_id> <folder>`)."
            )
        from sentence_transformers import CrossEncoder

        model = CrossEncoder(str(self.model_output_path))
        return model.push_to_hub(repo_id, private=private, token=token)
