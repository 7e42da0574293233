"""Fine-tune the embedding model (the first-stage retriever) on the training queries: the guide's step before
the reranker, and the rival any fine-tuned reranker must beat with the same labels (issue 12).

The recipe is sentence-transformers' stock one: ``SentenceTransformerTrainer`` with
``MultipleNegativesRankingLoss`` over (query, positive, mined hard negative) triples, the other queries'
passages in the batch serving as more negatives. After each epoch ``InformationRetrievalEvaluator`` scores
NDCG@10 of retrieving the validation queries from the whole corpus; the best epoch is kept
(``load_best_model_at_end``); when no epoch beats the base model on validation, the base model is kept
(``best_epoch`` 0), so fine-tuning never hands a later stage a worse retriever than it started from. The saved folder is a plain sentence-transformers model (with its model card),
so :class:`~rerank_utils.retrieval.dense.DenseRetriever`, LlamaIndex's ``HuggingFaceEmbedding`` and the bridge
reranker all load it by path.

A saved model is reused only when its ``training.json`` records the same recipe, base model and
:func:`~rerank_utils.data.records.data_fingerprint` of the data it was trained and validated on: never merely the same number of queries.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from datasets import Dataset
from sentence_transformers import (
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.evaluation import InformationRetrievalEvaluator
from sentence_transformers.losses import MultipleNegativesRankingLoss
from sentence_transformers.training_args import BatchSamplers

from rerank_utils.data.records import RetrievalDataset, data_fingerprint
from rerank_utils.models.loading import load_bi_encoder
from rerank_utils.retrieval.dense import DenseRetriever
from rerank_utils.retrieval.embedding_cache import cached_embeddings
from rerank_utils.training.eta import EtaLog
from rerank_utils.training.mining import MiningConfig, mine_negatives

FACTS_FILE = "training.json"
VAL_NAME = "val"
#: the metric the best epoch is chosen on (InformationRetrievalEvaluator's key for cosine NDCG@10)
VAL_METRIC = f"{VAL_NAME}_cosine_ndcg@10"


@dataclass
class RetrieverRecipe:
    """How the embedding model is fine-tuned. Defaults: the stock recipe measured in issue 12 (one dense hard
    negative per query from the base model's top-10, 2 epochs, lr 5e-5, batch 32)."""
    mining: MiningConfig = field(default_factory=lambda: MiningConfig(strategy="dense", num_negatives=1, range_max=10))
    epochs: int = 2
    learning_rate: float = 5e-5
    batch_size: int = 32
    warmup_ratio: float = 0.1
    max_length: int = 256
    seed: int = 42

    def validate(self) -> "RetrieverRecipe":
        self.mining.validate()
        for name in ("epochs", "batch_size", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RetrieverRecipe.{name} must be a positive int, got {value!r}")
        if not float(self.learning_rate) > 0:
            raise ValueError(f"RetrieverRecipe.learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0.0 <= float(self.warmup_ratio) < 1.0:
            raise ValueError(f"RetrieverRecipe.warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RetrieverRecipe":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"RetrieverRecipe.from_dict: unknown keys {sorted(unknown)}; expected some of {sorted(known)}")
        d = dict(d)
        if "mining" in d:
            d["mining"] = MiningConfig(**d["mining"])
        return cls(**d)


@dataclass
class RetrieverRun:
    """A fine-tuned retriever: the model, each epoch's validation NDCG@10, the one kept, and the costs."""
    model: Any
    model_dir: Path
    facts: dict
    reused: bool = False

    @property
    def best_metric(self) -> float:
        return self.facts["best_validation_ndcg@10"]

    def row(self) -> dict[str, Any]:
        return {
            "base val ndcg@10": self.facts["base_validation_ndcg@10"],
            "val ndcg@10 (best)": self.best_metric,
            "best epoch": self.facts["best_epoch"],
            "train s": round(self.facts["train_seconds"], 1),
            "triples": self.facts["triples"],
            "reused": self.reused,
        }


def training_triples(ds: RetrievalDataset, negatives: dict[str, list[str]]) -> dict[str, list[str]]:
    """Columns ``anchor, positive, negative`` for MNRL: one row per (query, positive), each paired with the
    query's mined negatives in turn (cycled when a query has more positives than negatives). A query with no
    mined negative still trains, with the in-batch negatives only, and is counted by the mining report."""
    rows, rows_without = [], []  # (query id, positive id, negative id); (query id, positive id)
    for qid in ds.queries:
        negs = negatives.get(qid, [])
        for i, pos in enumerate(ds.positives(qid)):
            if negs:
                rows.append((qid, pos, negs[i % len(negs)]))
            else:
                rows_without.append((qid, pos))
    if rows_without:  # the negative column must be filled for every row: fall back to a random other passage
        rng, ids = random.Random(0), list(ds.corpus)
        for qid, pos in rows_without:
            blocked = set(ds.positives(qid))
            rows.append((qid, pos, next(d for d in (rng.choice(ids) for _ in range(1000)) if d not in blocked)))
    if not rows:
        raise ValueError(f"{ds.name or 'the training split'}: no query has a relevant passage; nothing to train on")
    return {"anchor": [ds.queries[q] for q, _, _ in rows], "positive": [ds.corpus[p] for _, p, _ in rows],
            "negative": [ds.corpus[n] for _, _, n in rows]}


def _ir_evaluator(val: RetrievalDataset, batch_size: int):
    relevant = {q: set(val.positives(q)) for q in val.queries if val.positives(q)}
    if not relevant:
        raise ValueError(f"{val.name or 'the validation split'}: no query has a relevant passage; cannot validate")
    return InformationRetrievalEvaluator(
        queries={q: val.queries[q] for q in relevant}, corpus=val.corpus, relevant_docs=relevant, name=VAL_NAME,
        ndcg_at_k=[10], mrr_at_k=[10], accuracy_at_k=[1, 10], precision_recall_at_k=[10, 20], map_at_k=[10],
        batch_size=batch_size, show_progress_bar=False, score_functions=None, main_score_function="cosine",
    )


def base_validation(evaluator: InformationRetrievalEvaluator, model) -> float:
    """The untrained model's validation NDCG@10 (``VAL_METRIC``). Its corpus embeddings, what the evaluator would
    compute, come from the embedding cache (:func:`~rerank_utils.retrieval.embedding_cache.cached_embeddings`) when
    the same weights have encoded the same validation corpus the same way before: notebook 04's learning curve starts
    from notebook 03's base model at every size, so only the queries are encoded again. Exact: the cached array is the
    evaluator's own output for those weights."""
    settings = json.dumps({"by": "InformationRetrievalEvaluator.embed_inputs(document)", "batch_size": evaluator.batch_size,
                           "max_seq_length": model.max_seq_length}, sort_keys=True)
    emb, _ = cached_embeddings(model, evaluator.corpus, settings,
                               lambda texts: evaluator.embed_inputs(model, texts, encode_fn_name="document").float().cpu().numpy())
    return evaluator(model, corpus_embeddings=torch.from_numpy(emb))[VAL_METRIC]


def fine_tune_retriever(
    train: RetrievalDataset,
    val: RetrievalDataset,
    output_dir: str | Path,
    recipe: RetrieverRecipe | None = None,
    base_model: str = "default",
    device: str | None = None,
    show_progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> RetrieverRun:
    """Mine negatives with the base model, fine-tune it with MNRL, validate each epoch, keep the best epoch,
    and save it to ``output_dir`` with its model card and ``training.json`` (recipe, base model, data
    fingerprint, per-epoch validation NDCG@10, seconds)."""
    recipe = (recipe or RetrieverRecipe()).validate()
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):  # replace an earlier retriever, never someone's other files
        old = output_dir / FACTS_FILE
        if not (old.is_file() and json.loads(old.read_text(encoding="utf-8")).get("kind") == "retriever"):
            raise FileExistsError(f"{output_dir} exists and holds no earlier fine-tuned retriever ({FACTS_FILE}): "
                                  f"choose an empty or new folder")
    model = load_bi_encoder(base_model, device=device)
    model.max_seq_length = recipe.max_length
    t0 = time.perf_counter()
    mined = mine_negatives(train, recipe.mining, retriever=DenseRetriever(train.corpus, model) if recipe.mining.source == "dense" else None)
    mining_seconds = time.perf_counter() - t0
    triples = training_triples(train, mined.negatives)
    evaluator = _ir_evaluator(val, recipe.batch_size)
    base_val = base_validation(evaluator, model)

    with tempfile.TemporaryDirectory(prefix="retriever-ckpt-") as ckpt:
        args = SentenceTransformerTrainingArguments(
            output_dir=ckpt, num_train_epochs=recipe.epochs, learning_rate=recipe.learning_rate,
            per_device_train_batch_size=recipe.batch_size, per_device_eval_batch_size=recipe.batch_size,
            warmup_steps=recipe.warmup_ratio, seed=recipe.seed, data_seed=recipe.seed,
            batch_sampler=BatchSamplers.NO_DUPLICATES,  # MNRL: the same passage twice in a batch is a false negative
            eval_strategy="epoch", save_strategy="epoch", save_total_limit=recipe.epochs + 1,
            load_best_model_at_end=True, metric_for_best_model=f"eval_{VAL_METRIC}", greater_is_better=True,
            logging_strategy="epoch", report_to="none", disable_tqdm=not show_progress, use_cpu=(device == "cpu"),
            dataloader_num_workers=0,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=Dataset.from_dict(triples), loss=MultipleNegativesRankingLoss(model),
            evaluator=evaluator, callbacks=[EtaLog(log, what="retriever training")] if log else None,
        )
        t1 = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - t1
    history = trainer.state.log_history
    per_epoch = [{"epoch": h["epoch"], "val ndcg@10": h[f"eval_{VAL_METRIC}"]} for h in history if f"eval_{VAL_METRIC}" in h]
    losses = [{"epoch": h["epoch"], "loss": h["loss"]} for h in history if "loss" in h]
    best = max(per_epoch, key=lambda r: r["val ndcg@10"])
    if best["val ndcg@10"] < base_val:  # no epoch beat the base model on validation: keep the base, and say so
        model = load_bi_encoder(base_model, device=device)
        model.max_seq_length = recipe.max_length
        best = {"epoch": 0.0, "val ndcg@10": base_val}
    facts = {
        "kind": "retriever",
        "base_model": str(base_model),
        "recipe": recipe.to_dict(),
        "data_fingerprint": data_fingerprint(train, val),
        "data": f"{train.name}: {len(train)} training queries, {len(triples['anchor'])} triples; {len(val)} validation queries",
        "triples": len(triples["anchor"]),
        "mining": mined.report.row(),
        "mining_seconds": mining_seconds,
        "base_validation_ndcg@10": base_val,
        "validation_by_epoch": per_epoch,
        "loss_by_epoch": losses,
        "best_epoch": best["epoch"],
        "best_validation_ndcg@10": best["val ndcg@10"],
        "train_seconds": train_seconds,
    }
    if output_dir.exists():
        shutil.rmtree(output_dir)  # an earlier retriever (checked before training)
    model.save(str(output_dir))  # writes README.md: sentence-transformers' model card
    (output_dir / FACTS_FILE).write_text(json.dumps(facts, indent=1, default=str), encoding="utf-8")
    return RetrieverRun(model, output_dir, facts)


def saved_retriever_matches(output_dir: str | Path, train: RetrievalDataset, val: RetrievalDataset,
                            recipe: RetrieverRecipe, base_model: str) -> bool:
    """True when ``output_dir`` holds a retriever trained with this recipe, base model and data."""
    path = Path(output_dir) / FACTS_FILE
    if not path.is_file():
        return False
    facts = json.loads(path.read_text(encoding="utf-8"))
    want = json.loads(json.dumps(recipe.to_dict(), default=str))
    return (facts.get("kind") == "retriever" and facts.get("base_model") == str(base_model) and facts.get("recipe") == want
            and facts.get("data_fingerprint") == data_fingerprint(train, val))


def load_or_train_retriever(
    train: RetrievalDataset,
    val: RetrievalDataset,
    output_dir: str | Path,
    recipe: RetrieverRecipe | None = None,
    base_model: str = "default",
    device: str | None = None,
    retrain: bool = False,
    show_progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> RetrieverRun:
    """The retriever saved in ``output_dir`` when it was trained with this recipe, base model and data
    (:func:`saved_retriever_matches`), else a fresh :func:`fine_tune_retriever` run saved there."""
    recipe = (recipe or RetrieverRecipe()).validate()
    if not retrain and saved_retriever_matches(output_dir, train, val, recipe, base_model):
        facts = json.loads((Path(output_dir) / FACTS_FILE).read_text(encoding="utf-8"))
        return RetrieverRun(load_bi_encoder(str(output_dir), device=device), Path(output_dir), facts, reused=True)
    return fine_tune_retriever(train, val, output_dir, recipe, base_model, device=device, show_progress=show_progress, log=log)
