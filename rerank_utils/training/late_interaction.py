"""Fine-tuning the late-interaction (MaxSim) reranker of :mod:`rerank_utils.models.late_interaction` with
sentence-transformers' multi-vector trainer, validated by reranking NDCG@10 after each epoch (issue 12's comparison).
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

from datasets import Dataset
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator
from sentence_transformers.base.sampler import BatchSamplers
from sentence_transformers.multi_vector_encoder import (
    MultiVectorEncoderTrainer,
    MultiVectorEncoderTrainingArguments,
)
from sentence_transformers.multi_vector_encoder.losses import (
    MultiVectorMultipleNegativesRankingLoss,
)

from rerank_utils.evaluation.metrics import evaluate_run
from rerank_utils.models.late_interaction import MaxSimReranker, maxsim_encoder
from rerank_utils.retrieval.reranking import rerank_run
from rerank_utils.training.retriever import training_triples


class _RerankValidation(BaseEvaluator):
    """The Trainer's per-epoch validation: NDCG@10 of reranking the validation queries' first-stage top-``top_k``
    with the model being trained, exactly as the benchmark scores it (``rerank_run`` + ``evaluate_run``)."""
    def __init__(self, val, val_run: dict, top_k: int = 20, name: str = "val"):
        super().__init__()
        self.val, self.val_run, self.top_k, self.name = val, val_run, top_k, name
        self.greater_is_better = True
        self.primary_metric = f"{name}_ndcg@10"

    def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        run = rerank_run(MaxSimReranker(model), self.val, self.val_run, top_k=self.top_k)
        return {self.primary_metric: evaluate_run(run, self.val.qrels, ["ndcg@10"]).aggregate["ndcg@10"]}


def fine_tune_late_interaction(
    train,
    val,
    val_run: dict,
    output_dir: str | Path,
    negatives: dict[str, list[str]],
    base_model: "str | Path | MaxSimReranker" = "default",
    epochs: int = 2,
    learning_rate: float = 5e-5,
    batch_size: int = 32,
    scale: float = 20.0,
    max_length: int = 256,
    top_k: int = 20,
    seed: int = 42,
    device: str | None = None,
) -> tuple[MaxSimReranker, dict]:
    """Train :func:`~rerank_utils.models.late_interaction.maxsim_encoder` over ``base_model`` (e.g. the fine-tuned retriever's folder, or a
    :class:`~rerank_utils.models.late_interaction.MaxSimReranker` trained before, e.g. on pseudo-queries, whose encoder is then trained on) as a late-interaction
    model: sentence-transformers' ``MultiVectorEncoderTrainer`` with its multi-vector
    ``MultiVectorMultipleNegativesRankingLoss`` (mean MaxSim in [-1, 1], so ``scale`` 20 as for cosine) over (query,
    positive, mined ``negatives``) triples; after each epoch, NDCG@10 of reranking ``val_run``'s top-``top_k``;
    the best epoch is kept, or the untrained encoder (epoch 0) when no epoch beats it. Saves the model to
    ``output_dir``; returns the reranker and the facts (per-epoch validation, the epoch kept, seconds)."""
    encoder = base_model.encoder if isinstance(base_model, MaxSimReranker) else maxsim_encoder(base_model, max_length=max_length, device=device)
    untrained = copy.deepcopy(encoder)  # kept when no epoch beats it
    validation = _RerankValidation(val, val_run, top_k)
    base_val = validation(encoder)[validation.primary_metric]
    triples = training_triples(train, negatives)
    metric = f"eval_{validation.primary_metric}"
    with tempfile.TemporaryDirectory(prefix="late-interaction-ckpt-") as ckpt:
        args = MultiVectorEncoderTrainingArguments(
            output_dir=ckpt, num_train_epochs=epochs, learning_rate=learning_rate, per_device_train_batch_size=batch_size,
            warmup_steps=0.1, seed=seed, data_seed=seed, batch_sampler=BatchSamplers.NO_DUPLICATES,
            eval_strategy="epoch", save_strategy="epoch", save_total_limit=epochs + 1, load_best_model_at_end=True,
            metric_for_best_model=metric, greater_is_better=True, logging_strategy="epoch", report_to="none",
            disable_tqdm=True, use_cpu=(device == "cpu"), dataloader_num_workers=0,
        )
        trainer = MultiVectorEncoderTrainer(model=encoder, args=args, train_dataset=Dataset.from_dict(triples),
                                            loss=MultiVectorMultipleNegativesRankingLoss(encoder, scale=scale), evaluator=validation)
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
    per_epoch = [{"epoch": h["epoch"], "val ndcg@10": h[metric]} for h in trainer.state.log_history if metric in h]
    best = max(per_epoch, key=lambda r: r["val ndcg@10"])
    if best["val ndcg@10"] < base_val:
        encoder, best = untrained, {"epoch": 0.0, "val ndcg@10": base_val}
    encoder.save(str(output_dir))
    facts = {"base_model": "a MaxSimReranker" if isinstance(base_model, MaxSimReranker) else str(base_model), "base_validation_ndcg@10": base_val, "validation_by_epoch": per_epoch,
             "best_epoch": best["epoch"], "best_validation_ndcg@10": best["val ndcg@10"], "triples": len(triples["anchor"]),
             "train_seconds": seconds, "scale": scale, "learning_rate": learning_rate, "epochs": epochs}
    return MaxSimReranker(encoder), facts
