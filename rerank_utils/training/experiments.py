"""Experiments that train several models: the negative strategies side by side (notebook 02), the learning curve of
labels for the reranker (notebook 04), for the retriever, and for both (:func:`labels_learning_curve`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.evaluation.metrics import evaluate_run
from rerank_utils.evaluation.reports import evaluate_reranker
from rerank_utils.retrieval.dense import DenseRetriever
from rerank_utils.training.arguments import TrainingConfig
from rerank_utils.training.mining import MiningConfig
from rerank_utils.training.recipes import FirstStages, Recipe, train_recipe
from rerank_utils.training.retriever import RetrieverRecipe, load_or_train_retriever


def compare_negative_strategies(
    strategies: list[str],
    mining: MiningConfig,
    training: TrainingConfig,
    train: RetrievalDataset,
    val: RetrievalDataset,
    first_stages: FirstStages,
    workdir: str | Path,
    base_model: str = "default",
    train_queries: int | None = None,
    top_k: int = 20,
    device: str | None = None,
):
    """Fine-tune once per negative strategy (everything else equal) and score each on validation:
    NDCG@10 of reranking BM25's and the bi-encoder's top-``top_k``. Returns a DataFrame (notebook 02)."""
    val_runs = first_stages.runs(val.queries, top_k=top_k)
    rows = {}
    for strategy in strategies:
        recipe = Recipe(strategy, replace(mining, strategy=strategy), training, train_queries)
        run = train_recipe(recipe, train, val, first_stages, Path(workdir) / strategy, base_model, top_k=top_k, device=device)
        ev = evaluate_reranker(run.model, val, val_runs, top_k=top_k)
        rows[strategy] = {
            "val NDCG@10, BM25 + CE": ev.results["BM25 + reranker"].aggregate["ndcg@10"],
            "val NDCG@10, bi-encoder + CE": ev.results["bi-encoder + reranker"].aggregate["ndcg@10"],
            "train s": round(run.result.train_seconds, 1),
            "final train loss": next((h["loss"] for h in reversed(run.result.history) if "loss" in h), None),
        }
    for name in ("BM25", "bi-encoder"):
        rows[f"{name} alone (no reranker)"] = {
            f"val NDCG@10, {name} + CE": evaluate_run(val_runs[name], val.qrels, ["ndcg@10"]).aggregate["ndcg@10"]
        }
    return pd.DataFrame(rows).T


def learning_curve(
    recipe: Recipe,
    sizes,
    train: RetrievalDataset,
    val: RetrievalDataset,
    test: RetrievalDataset,
    first_stages: FirstStages,
    workdir: str | Path,
    base_model: str = "default",
    top_k: int = 20,
    device: str | None = None,
    extra_first_stages: Mapping[int, Mapping[str, Any]] | None = None,
    evaluate_as: Callable[[Any], Any] | None = None,
) -> list[dict]:
    """The guide's "1000-5000 samples are enough", tested: train ``recipe`` on a seeded sample of each of
    ``sizes`` training queries and score each model by reranking the test queries' bi-encoder and BM25
    top-``top_k``. Rows ``{train_queries, labelled_pairs, val_best, test NDCG@10 bi+CE, test NDCG@10 BM25+CE,
    train_s}``; ``labelled_pairs`` (the guide's "samples") is queries x (1 positive + the recipe's negatives),
    give or take the few queries with two positives. ``extra_first_stages[n]`` maps names to more first stages
    (searchable over the test corpus) that the model trained on ``n`` queries also reranks, as
    ``test NDCG@10 <name>+CE``: the retriever fine-tuned on the same queries
    (:func:`rerank_utils.training.experiments.retriever_learning_curve`), so the curve shows the labels spent on
    the retriever, on the reranker, and on both. ``evaluate_as`` turns each trained model into the scorer its test
    evaluation runs (:func:`rerank_utils.models.fast.fast_reranker`: the fast path); validation during training is the
    model's own. Introduced in notebook ``04_evaluation``."""
    test_runs = first_stages.runs(test.queries, top_k=top_k)
    rows = []
    for n in sizes:
        n = min(int(n), len(train))
        r = replace(recipe, name=f"{recipe.name}-{n}q", train_queries=n)
        run = train_recipe(r, train, val, first_stages, Path(workdir) / f"{n}q", base_model, top_k=top_k, device=device)
        extra = dict((extra_first_stages or {}).get(n, {}))
        runs = {**test_runs, **{name: fs.search(test.queries, top_k=top_k) for name, fs in extra.items()}}
        scorer = evaluate_as(run.model) if evaluate_as is not None else run.model
        ev = evaluate_reranker(scorer, test, runs, top_k=top_k, metrics=("ndcg@10",))
        rows.append({
            "train_queries": n,
            "labelled_pairs": n * (1 + r.mining.num_negatives),
            "val_best": run.result.best_metric,
            "test NDCG@10 bi+CE": ev.results["bi-encoder + reranker"].aggregate["ndcg@10"],
            "test NDCG@10 BM25+CE": ev.results["BM25 + reranker"].aggregate["ndcg@10"],
            **{f"test NDCG@10 {name}+CE": ev.results[f"{name} + reranker"].aggregate["ndcg@10"] for name in extra},
            "train_s": run.result.train_seconds,
        })
    return rows


def retriever_learning_curve(
    recipe: RetrieverRecipe,
    sizes,
    train: RetrievalDataset,
    val: RetrievalDataset,
    test: RetrievalDataset,
    workdir: str | Path,
    base_model: str = "default",
    sample_seed: int = 42,
    top_k: int = 20,
    device: str | None = None,
) -> tuple[list[dict], dict[int, Any]]:
    """The learning curve of the labels spent on the embedding model: fine-tune ``recipe`` on a seeded sample of
    each of ``sizes`` training queries (``train.sample(n, seed=sample_seed)``: pass the reranker recipe's
    ``mining.seed`` and the samples are the very queries :func:`rerank_utils.training.experiments.learning_curve` trains the
    reranker on) and retrieve the test queries from the corpus with it. Returns the rows ``{train_queries,
    val_best, best_epoch, test NDCG@10 FT bi, train_s}`` and each size's retriever as a
    :class:`~rerank_utils.retrieval.dense.DenseRetriever` over the test corpus, keyed by size, so the reranker trained
    on the same queries can rerank its top-``top_k`` (``learning_curve(..., extra_first_stages=...)``).
    Each size is saved under ``workdir/<n>q`` and reused when recipe, base model and data match.
    Introduced in notebook ``04_evaluation``."""
    rows, retrievers = [], {}
    for n in sizes:
        n = min(int(n), len(train))
        run = load_or_train_retriever(train.sample(n, seed=sample_seed), val, Path(workdir) / f"{n}q", recipe, base_model, device=device)
        retriever = DenseRetriever(test.corpus, run.model)
        result = evaluate_run(retriever.search(test.queries, top_k=top_k), test.qrels, ["ndcg@10"])
        rows.append({"train_queries": n, "val_best": run.best_metric, "best_epoch": run.facts["best_epoch"],
                     "test NDCG@10 FT bi": result.aggregate["ndcg@10"], "train_s": run.facts["train_seconds"]})
        retrievers[n] = retriever
    return rows, retrievers


def labels_learning_curve(
    reranker_recipe,
    retriever_recipe: RetrieverRecipe,
    sizes,
    train: RetrievalDataset,
    val: RetrievalDataset,
    test: RetrievalDataset,
    first_stages,
    workdir: str | Path,
    base_model: str = "default",
    retriever_base_model: str = "default",
    top_k: int = 20,
    device: str | None = None,
    evaluate_as: Callable[[Any], Any] | None = None,
) -> list[dict]:
    """Notebook 04's learning curve of the labels spent on the reranker, on the retriever, and on both: for each
    size, the reranker recipe trained by :func:`rerank_utils.training.experiments.learning_curve` (``bi+CE``, ``BM25+CE``),
    the retriever fine-tuned on the very same sampled queries (``FT bi``, :func:`retriever_learning_curve`) and
    that retriever's top-``top_k`` reranked by that reranker (``FT bi+CE``). Models are saved under
    ``workdir/reranker/<n>q`` and ``workdir/retriever/<n>q`` and reused; ``evaluate_as``: as in :func:`learning_curve`."""
    retriever_rows, retrievers = retriever_learning_curve(
        retriever_recipe, sizes, train, val, test, Path(workdir) / "retriever", base_model=retriever_base_model,
        sample_seed=reranker_recipe.mining.seed, top_k=top_k, device=device)
    rows = learning_curve(reranker_recipe, sizes, train, val, test, first_stages, Path(workdir) / "reranker", base_model=base_model,
                          top_k=top_k, device=device, extra_first_stages={n: {"FT bi": r} for n, r in retrievers.items()},
                          evaluate_as=evaluate_as)
    for row, retriever_row in zip(rows, retriever_rows):  # the same sample of training queries on both models
        if row["train_queries"] != retriever_row["train_queries"]:
            raise RuntimeError(f"labels_learning_curve: sizes out of step ({row['train_queries']} vs {retriever_row['train_queries']})")
        row["test NDCG@10 FT bi"], row["retriever_train_s"] = retriever_row["test NDCG@10 FT bi"], retriever_row["train_s"]
    return rows
