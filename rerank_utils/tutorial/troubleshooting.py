"""The guide's FAQ (section 15) as small experiments: measure a cause instead of guessing it.

* **No gain after fine-tuning.** First :func:`retriever_first`: is the fine-tuned retriever (notebook 03) already
  as good as the reranker over it? Then :func:`flip_labels` injects label noise at an exact rate;
  :class:`FaqExperiments` trains small variants of one recipe (label noise, fewer training queries, another
  learning rate, more epochs with and without early stopping) through the package's own
  :func:`rerank_utils.training.trainer.fine_tune` and scores each the same way: the best validation NDCG@10 against the
  first stage's, and on request the test NDCG@10 of reranking the first stage's top-K with a paired interval.
* **Training too slow.** :func:`training_throughput` times real training steps (the library's BCE loss,
  backward, AdamW) for each ``max_length`` x batch size; :func:`long_pairs` builds inputs long enough for
  ``max_length`` to matter. The FAQ's own pairs are at most 128 tokens (notebook 01), and batches are padded to
  their longest pair, not to ``max_length``: on them 512 costs what 128 costs.
* **Out of memory.** :func:`gradient_accumulation_check` trains the same rows three times from the same weights
  (dropout off): batch ``B x k``, batch ``B`` with ``k`` accumulation steps, and batch ``B`` alone, and reports how
  far each one's parameters end from the first one's, with the activation memory one step keeps for backward
  (:func:`activation_megabytes`), which is what accumulation shrinks.
* **Choosing top-K.** :func:`top_k_advice` reads notebook 04's measured trade-off and adds what each step of K
  buys per extra 100 ms of latency.

Introduced in notebook ``12_troubleshooting``.
"""

from __future__ import annotations

import copy
import math
import random
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
from transformers.utils import logging as hf_logging

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.evaluation.metrics import evaluate_run
from rerank_utils.evaluation.reports import evaluate_reranker
from rerank_utils.models.loading import load_cross_encoder
from rerank_utils.training.arguments import TrainingConfig
from rerank_utils.training.mining import mine_negatives
from rerank_utils.training.recipes import FirstStages, Recipe
from rerank_utils.training.samples import reranking_samples, training_rows
from rerank_utils.training.trainer import FineTuneResult, fine_tune


# ------------------------------------------------------------------------------------------ label noise
def flip_labels(rows: Sequence[dict], fraction: float, seed: int = 0) -> list[dict]:
    """A copy of ``rows`` (from :func:`rerank_utils.training.samples.training_rows`) with exactly
    ``round(fraction * len(rows))`` rows made wrong, chosen at random (seeded); the input is not changed.

    * labelled pairs (``label``): the label becomes ``1 - label`` (a relevant pair marked irrelevant, or the
      reverse);
    * lists (``docs`` / ``labels``): the positives' labels move to as many of the list's negatives, drawn at
      random, so the judged answer is marked wrong and a wrong passage right. Each list keeps its number of
      positives, which listwise losses need;
    * MNRL rows (``positive``, ``negative_1`` …): the positive swaps places with one of its negatives.
    """
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"flip_labels: fraction must be in [0, 1], got {fraction!r}")
    out = [copy.deepcopy(dict(r)) for r in rows]
    n = int(math.floor(float(fraction) * len(out) + 0.5))
    rng = random.Random(seed)
    for i in sorted(rng.sample(range(len(out)), n)):
        row = out[i]
        if "label" in row:
            row["label"] = 1.0 - float(row["label"])
        elif "labels" in row:
            labels = [float(x) for x in row["labels"]]
            pos = [j for j, x in enumerate(labels) if x > 0]
            neg = [j for j, x in enumerate(labels) if x <= 0]
            if len(neg) < len(pos):
                raise ValueError(f"flip_labels: list {i} has {len(pos)} positives but only {len(neg)} negatives to move them to")
            for p, q in zip(pos, rng.sample(neg, len(pos))):
                labels[p], labels[q] = labels[q], labels[p]
            row["labels"] = labels
        elif "positive" in row:
            negs = [k for k in row if k.startswith("negative_")]
            if not negs:
                raise ValueError(f"flip_labels: row {i} has a positive but no negative_* column to swap it with")
            k = rng.choice(negs)
            row["positive"], row[k] = row[k], row["positive"]
        else:
            raise ValueError(f"flip_labels: row {i} has no 'label', 'labels' or 'positive' column: {sorted(row)}")
    return out


# ------------------------------------------------------------------------------------ the experiments
@dataclass
class FaqExperiments:
    """Small variants of one recipe, trained on the same splits and scored the same way.

    Every :meth:`run` samples ``train_queries`` training queries (seeded, as
    :func:`rerank_utils.training.recipes.train_recipe` does), mines negatives as the recipe says, optionally flips a share
    of the labels, fine-tunes with :func:`rerank_utils.training.trainer.fine_tune` (validation each epoch on the
    ``first_stage``'s top-``top_k`` of the validation queries, the best epoch kept) and, when asked, reranks the
    test queries' top-``top_k`` and compares with the first stage alone (paired bootstrap). A run with the same
    settings as an earlier one is not trained again. Each variant's model folder (about 90 MB) is deleted once
    scored unless ``keep_models``; its checkpoints are kept only for the run that reads its last epoch back.
    """
    recipe: Recipe
    train: RetrievalDataset
    val: RetrievalDataset
    test: RetrievalDataset
    stages: FirstStages
    workdir: str | Path
    base_model: str = "default"
    first_stage: str = "bi-encoder"
    top_k: int = 20
    device: str | None = None
    keep_models: bool = False
    runs: dict[tuple, dict] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        val_run = self.stages.runs(self.val.queries, top_k=self.top_k)[self.first_stage]
        self._test_run = self.stages.runs(self.test.queries, top_k=self.top_k)[self.first_stage]
        self.val_samples = reranking_samples(self.val, val_run, top_k=self.top_k)
        self.first_stage_val = evaluate_run(val_run, self.val.qrels, ["ndcg@10"]).aggregate["ndcg@10"]
        self.first_stage_test = evaluate_run(self._test_run, self.test.qrels, ["ndcg@10"]).aggregate["ndcg@10"]

    def run(
        self,
        name: str,
        label_noise: float = 0.0,
        train_queries: int | None = None,
        learning_rate: float | None = None,
        epochs: int | None = None,
        early_stopping_patience: int | None | str = "recipe",
        score_test: bool = False,
        score_last_epoch: bool = False,
    ) -> dict[str, Any]:
        """Train and score one variant; returns a row: the settings, epochs run, the best epoch, validation
        NDCG@10 by epoch and at its best (what ``fine_tune`` computes anyway), the first stage's, the seconds.

        ``None`` keeps the recipe's value (``early_stopping_patience``: ``"recipe"`` keeps it, ``None`` turns
        early stopping off). ``score_test``: also rerank the test queries with the kept (best) model, with a paired
        interval against the first stage (about 20 s for 100 queries x top-20 on 2 CPU cores).
        ``score_last_epoch``: also score the LAST epoch's model on test (what training without validation would
        have shipped), read back from the last checkpoint; implies ``score_test``."""
        n = min(int(train_queries or self.recipe.train_queries or len(self.train)), len(self.train))
        changes: dict[str, Any] = {}
        if learning_rate is not None:
            changes["learning_rate"] = float(learning_rate)
        if epochs is not None:
            changes["epochs"] = int(epochs)
        if early_stopping_patience != "recipe":
            changes["early_stopping_patience"] = early_stopping_patience
        config: TrainingConfig = replace(self.recipe.training, **changes).validate()
        score_test = score_test or score_last_epoch
        key = (float(label_noise), n, config.learning_rate, config.epochs, config.early_stopping_patience, score_test, score_last_epoch)
        if key in self.runs:
            return {**self.runs[key], "variant": name}

        train = self.train.sample(n, seed=self.recipe.mining.seed)
        mined = mine_negatives(train, self.recipe.mining, retriever=self.stages.retriever_for(self.recipe.mining))
        clean = training_rows(train, mined.negatives, config.loss)
        rows = flip_labels(clean, label_noise, seed=self.recipe.mining.seed)
        out = self.workdir / f"run{len(self.runs):02d}"
        if out.exists():
            shutil.rmtree(out)
        with _no_progress_bars():
            result = fine_tune(
                self.recipe.build_model(self.base_model, self.device), rows, out, config, val_samples=self.val_samples,
                device=self.device, show_progress=False, keep_checkpoints=score_last_epoch,  # the last epoch is read back below
            )
        curve = [v for _, v in result.curves()["val_ndcg@10"]]
        row: dict[str, Any] = {
            "variant": name,
            "label_noise": float(label_noise),
            "train_queries": n,
            "training rows": len(rows),
            "rows with wrong labels": sum(a != b for a, b in zip(clean, rows)),
            "learning_rate": config.learning_rate,
            "epochs": config.epochs,
            "early_stopping_patience": config.early_stopping_patience,
            "epochs_run": len(curve),
            "best_epoch": curve.index(max(curve)) + 1 if curve else None,
            "val_curve": curve,
            "val NDCG@10 (best)": result.best_metric,
            "val NDCG@10, first stage": self.first_stage_val,
            "val change vs first stage": (result.best_metric - self.first_stage_val) if result.best_metric is not None else None,
            "train_s": result.train_seconds,
            "validation_seconds": [round(t, 2) for _, t in result.validation_seconds],  # since training began, per epoch
        }
        if score_test:
            row.update(self._score(result.model, "test"))
        if score_last_epoch:
            last = _last_checkpoint(out / "checkpoints")
            row["val NDCG@10 (last epoch)"] = curve[-1] if curve else None
            with _no_progress_bars():
                last_model = load_cross_encoder(str(last), device=self.device)
            row.update(self._score(last_model, "test, last epoch"))
        if not self.keep_models:
            shutil.rmtree(out, ignore_errors=True)
        self.runs[key] = row
        return dict(row)

    def early_stopped(self, full: dict[str, Any], patience: int, name: str) -> dict[str, Any]:
        """The row of ``full`` (a :meth:`run` without early stopping, ``score_last_epoch=True``) trained with early
        stopping after ``patience`` epochs without a better validation NDCG@10, without training it again.

        Early stopping only reads the validation curve: with the same seed, the same data and the same epochs (so the
        same learning-rate schedule), the run that stops is the first epochs of ``full``, step for step. So the row
        applies ``transformers.EarlyStoppingCallback``'s rule (a better value resets the count, any other adds one,
        stop at ``patience``) to ``full``'s curve: the epochs it would have run, its curve, its best epoch, its
        seconds (``full``'s clock at the end of that validation) and, as the best epoch's model is ``full``'s best
        model, ``full``'s test scores. Where the stopped run's best epoch is not ``full``'s (a later epoch beat it),
        its model is not one ``full`` scored: it is trained for real (:meth:`run`)."""
        if not patience or patience < 1:
            raise ValueError(f"early_stopped({name!r}): patience={patience!r}, must be an integer >= 1")
        if full.get("early_stopping_patience") is not None or "test, last epoch NDCG@10" not in full:
            raise ValueError(f"early_stopped({name!r}): {full.get('variant')!r} must be a run without early stopping, "
                             f"scored with score_last_epoch=True")
        curve = list(full["val_curve"])
        best, waited, stop = None, 0, len(curve)
        for epoch, value in enumerate(curve, 1):
            if best is None or value > best:
                best, waited = value, 0
            else:
                waited += 1
                if waited >= patience:
                    stop = epoch
                    break
        kept = curve[:stop]
        best_epoch = kept.index(max(kept)) + 1
        if best_epoch != full["best_epoch"]:
            return self.run(name, train_queries=full["train_queries"], label_noise=full["label_noise"],
                            learning_rate=full["learning_rate"], epochs=full["epochs"], early_stopping_patience=patience,
                            score_test=True)
        row = {k: v for k, v in full.items() if "last epoch" not in k}
        row.update({
            "variant": name, "early_stopping_patience": patience, "epochs_run": stop, "best_epoch": best_epoch,
            "val_curve": kept, "val NDCG@10 (best)": max(kept), "val change vs first stage": max(kept) - full["val NDCG@10, first stage"],
            "train_s": full["validation_seconds"][stop - 1], "validation_seconds": full["validation_seconds"][:stop],
            "read from": full["variant"],
        })
        return row

    def _score(self, model, label: str) -> dict[str, float]:
        ev = evaluate_reranker(model, self.test, {self.first_stage: self._test_run}, top_k=self.top_k, metrics=("ndcg@10",))
        c = next(iter(ev.comparisons.values()))
        return {
            f"{label} NDCG@10": c.mean_b,
            f"{label} change vs first stage": c.diff,
            f"{label} 95% CI low": c.low,
            f"{label} 95% CI high": c.high,
        }


@contextmanager
def _no_progress_bars():
    """transformers' per-file progress bars (loading weights, writing shards) off for a loop of trainings."""
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


def _last_checkpoint(folder: Path) -> Path:
    found = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    if not found:
        raise FileNotFoundError(f"no checkpoint-* folder in {folder}")
    return found[-1]


# ------------------------------------------------------------------------------------- training speed
def long_pairs(ds: RetrievalDataset, tokenizer, n_pairs: int, min_tokens: int = 512, seed: int = 0) -> list[tuple[str, str]]:
    """``n_pairs`` (query, passage) pairs at least ``min_tokens`` tokens long together, built from ``ds``: each
    query's first positive followed by other passages of the corpus drawn at random (seeded) until the pair
    reaches ``min_tokens``. Synthetic, and said so: it exists to make ``max_length`` bite on data whose real
    pairs are short."""
    rng = random.Random(seed)
    docs = list(ds.corpus)
    qids = [q for q in ds.queries if ds.positives(q)]
    if not qids:
        raise ValueError("long_pairs: no query with a positive")
    pairs = []
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # counting tokens past the model's limit is the point: no warning for it
    try:
        for i in range(n_pairs):
            q = qids[i % len(qids)]
            query, parts = ds.queries[q], [ds.corpus[ds.positives(q)[0]]]
            while len(tokenizer(query, " ".join(parts))["input_ids"]) < min_tokens:
                parts.append(ds.corpus[rng.choice(docs)])
            pairs.append((query, " ".join(parts)))
    finally:
        hf_logging.set_verbosity(level)
    return pairs


def training_throughput(
    model,
    pairs: Sequence[tuple[str, str]],
    max_lengths: Sequence[int],
    batch_sizes: Sequence[int],
    steps: int = 2,
    warmup_steps: int = 1,
    learning_rate: float = 1e-5,
) -> list[dict[str, Any]]:
    """Pairs per second of real training steps for every ``max_length`` x batch size: tokenise (truncated to
    ``max_length``, padded to the batch's longest pair), sentence-transformers' ``BinaryCrossEntropyLoss``,
    backward, an AdamW step. ``warmup_steps`` untimed steps first, then ``steps`` timed ones; labels
    alternate 1, 0 (they do not change the cost). The model's weights and ``max_seq_length`` are restored
    afterwards. Rows ``{max_length, batch_size, tokens_per_pair, steps, pairs, seconds, pairs_per_s}``;
    ``tokens_per_pair`` is the mean padded length the model actually ran on."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("training_throughput: no pairs")
    if steps < 1 or warmup_steps < 0:
        raise ValueError(f"training_throughput: steps must be >= 1 and warmup_steps >= 0, got {steps}, {warmup_steps}")
    saved_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved_length = model.max_seq_length
    loss_fn = BinaryCrossEntropyLoss(model)
    rows = []
    try:
        model.train()
        for length in max_lengths:
            model.max_seq_length = int(length)
            for batch_size in batch_sizes:
                optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
                seconds, tokens, cursor = 0.0, 0, 0
                for step in range(warmup_steps + steps):
                    batch = [pairs[(cursor + j) % len(pairs)] for j in range(batch_size)]
                    cursor += batch_size
                    labels = torch.tensor([float(j % 2 == 0) for j in range(batch_size)], device=model.device)
                    _sync(model)
                    t0 = time.perf_counter()
                    loss = loss_fn([[q for q, _ in batch], [p for _, p in batch]], labels)
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    _sync(model)
                    if step >= warmup_steps:
                        seconds += time.perf_counter() - t0
                        tokens += batch_size * model.preprocess(batch)["input_ids"].shape[1]  # padded to the longest pair
                n = steps * batch_size
                rows.append({
                    "max_length": int(length), "batch_size": int(batch_size), "tokens_per_pair": tokens / n,
                    "steps": steps, "pairs": n, "seconds": seconds, "pairs_per_s": n / seconds if seconds > 0 else math.nan,
                })
    finally:
        model.load_state_dict(saved_state)
        model.max_seq_length = saved_length
        model.eval()
    return rows


def _sync(model) -> None:
    """Wait for a GPU's queued work, so that wall time measures it (a no-op on a CPU)."""
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


# ------------------------------------------------------------------------------------------ memory
def activation_megabytes(model, pairs: Sequence[tuple[str, str]], labels: Sequence[float] | None = None) -> float:
    """Megabytes of tensors one training forward pass over ``pairs`` keeps for backward (the activations,
    which grow with the batch; the weights, which do not, are left out), counted with
    ``torch.autograd.graph.saved_tensors_hooks``. On a GPU, ``torch.cuda.max_memory_allocated`` says the same
    from the allocator's side."""
    pairs = list(pairs)
    params = {p.data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    labels_t = torch.tensor(list(labels) if labels is not None else [float(j % 2 == 0) for j in range(len(pairs))], device=model.device)
    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = BinaryCrossEntropyLoss(model)([[q for q, _ in pairs], [p for _, p in pairs]], labels_t)
        loss.backward()
        model.zero_grad(set_to_none=True)
    finally:
        model.train(was_training)
    return sum(seen.values()) / 2**20


def gradient_accumulation_check(
    base_model,
    rows: Sequence[dict],
    batch_size: int,
    accumulation_steps: int,
    workdir: str | Path,
    learning_rate: float = 1e-4,
    max_length: int = 128,
    seed: int = 42,
    device: str | None = "cpu",
) -> list[dict[str, Any]]:
    """Does batch ``B`` with ``k`` accumulation steps update the weights as batch ``B x k`` does? Trains the
    same labelled pairs (``{query, passage, label}``), one epoch, in the same order, from the same weights with
    dropout off, in fp32, three ways through :func:`rerank_utils.training.trainer.fine_tune`: ``B x k`` (the reference), ``B``
    accumulating ``k`` batches (``TrainingConfig.gradient_accumulation_steps``), and ``B`` alone (k times as many,
    smaller, updates). ``rows`` should hold a multiple of ``B x k`` rows.

    Rows: ``{run, batch per step, accumulation steps, effective batch, optimiser steps, max |w - w_ref|,
    max |w - w_start|, activations MB per step, seconds}``. ``base_model`` is a name/path or a loaded
    ``CrossEncoder`` (copied, never trained in place)."""
    rows = list(rows)
    if batch_size < 1 or accumulation_steps < 2:
        raise ValueError(f"gradient_accumulation_check: batch_size >= 1 and accumulation_steps >= 2, got {batch_size}, {accumulation_steps}")
    if len(rows) % (batch_size * accumulation_steps):
        raise ValueError(f"gradient_accumulation_check: {len(rows)} rows is not a multiple of {batch_size} x {accumulation_steps}")
    torch.manual_seed(seed)
    with _no_progress_bars():
        start_model = (
            load_cross_encoder(base_model, device=device, max_length=max_length)
            if isinstance(base_model, (str, Path)) else copy.deepcopy(base_model)
        )
    start_model.max_seq_length = max_length
    for module in start_model.modules():  # dropout off: the three runs see the same forward passes
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    start = {k: v.detach().clone().float() for k, v in start_model.state_dict().items()}
    pairs = [(r["query"], r["passage"]) for r in rows]
    plans = [
        (f"batch {batch_size * accumulation_steps}", batch_size * accumulation_steps, 1),
        (f"batch {batch_size} x {accumulation_steps} accumulated", batch_size, accumulation_steps),
        (f"batch {batch_size}, no accumulation", batch_size, 1),
    ]
    out, reference = [], None
    with _no_progress_bars():
        for i, (name, b, k) in enumerate(plans):
            model = copy.deepcopy(start_model)
            memory = activation_megabytes(model, pairs[:b])  # what one step of b pairs keeps for backward
            config = TrainingConfig(
                loss="bce", epochs=1, batch_size=b, gradient_accumulation_steps=k, learning_rate=learning_rate,
                max_length=max_length, pos_weight=1.0, warmup_ratio=0.0, early_stopping_patience=None,
                logging_steps=1, seed=seed, precision="fp32",  # half precision's rounding would hide what is compared
            )
            folder = Path(workdir) / f"accumulation{i}"
            result: FineTuneResult = fine_tune(model, rows, folder, config, device=device, show_progress=False)
            weights = {n: v.detach().float() for n, v in result.model.state_dict().items()}
            reference = reference or weights
            out.append({
                "run": name,
                "batch per step": b,
                "accumulation steps": k,
                "effective batch": b * k,
                "optimiser steps": max((h.get("step", 0) for h in result.history), default=0),
                "max |w - w_ref|": max((weights[n] - reference[n]).abs().max().item() for n in weights),
                "max |w - w_start|": max((weights[n] - start[n]).abs().max().item() for n in weights),
                "activations MB per step": memory,
                "seconds": result.train_seconds,
            })
            shutil.rmtree(folder, ignore_errors=True)
    return out


# -------------------------------------------------------------------------------------------- top-K
def top_k_advice(rows: Sequence[dict], metric: str = "ndcg@10"):
    """Notebook 04's top-K trade-off (rows ``{k, ndcg@10, p50_ms, p95_ms, first_stage_recall@k}`` from
    :func:`rerank_utils.evaluation.pipelines.top_k_tradeoff`) as a table, with what each step of K bought: the change in
    ``metric`` and in p50 milliseconds against the previous K, and the change in ``metric`` per extra 100 ms."""
    if not rows:
        raise ValueError("top_k_advice: no rows")
    table = pd.DataFrame(sorted(rows, key=lambda r: r["k"])).set_index("k")
    table[f"{metric} gained"] = table[metric].diff()
    table["extra p50 ms"] = table["p50_ms"].diff()
    table[f"{metric} per extra 100 ms"] = 100 * table[f"{metric} gained"] / table["extra p50 ms"]
    return table


# ------------------------------------------------------------------------------ the retriever first
TWO_BY_TWO = ("BM25", "bi-encoder", "bi-encoder + fine-tuned", "fine-tuned bi-encoder", "fine-tuned bi-encoder + fine-tuned")


def retriever_first(records: dict, metric: str = "ndcg@10"):
    """The first answer to "no gain after fine-tuning?" (issue 12): is the fine-tuned *retriever* already as
    good? From notebook 04's records (``table`` and ``comparisons``), the 2x2 rows with quality and latency, and
    one plain sentence: serve the fine-tuned retriever alone unless the reranker over it has a paired interval
    above zero. Returns ``(table, advice)``; a record without the 2x2 (04 run before issue 12) is an error that
    says to rerun 04."""
    table, comparisons = records.get("table", {}), records.get("comparisons", {})
    missing = [row for row in TWO_BY_TWO if row not in table]
    key = "fine-tuned bi-encoder + fine-tuned vs fine-tuned bi-encoder"
    if missing or key not in comparisons:
        raise ValueError(f"notebook 04's records lack {missing or [key]}: rerun 04_evaluation (after 03_fine_tuning) on this profile")
    frame = pd.DataFrame({row: {metric: table[row][metric], "p50 ms": table[row]["p50 ms"]} for row in TWO_BY_TWO}).T
    c = comparisons[key]
    ft, both = table["fine-tuned bi-encoder"], table["fine-tuned bi-encoder + fine-tuned"]
    cost = f"{both['p50 ms'] / ft['p50 ms']:.0f}x the latency per query" if ft["p50 ms"] else "more latency per query"
    if c["low"] > 0:
        advice = (f"The reranker pays over the fine-tuned retriever: {c['diff']:+.3f} {metric} [{c['low']:+.3f}, {c['high']:+.3f}] "
                  f"for {cost}. Keep both.")
    else:
        advice = (f"The fine-tuned retriever alone scores {ft[metric]:.3f}; the reranker over it changes {metric} by "
                  f"{c['diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}] for {cost}. Serve the fine-tuned retriever alone, "
                  f"or look for what would make a reranker pay: a pretrained reranker, more labels, longer passages. "
                  f"The causes below are why a reranker did not gain over the first stage it reorders.")
    return frame, advice
