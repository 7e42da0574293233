"""A retrieval pipeline (a first stage, optionally a reranker over its top-K) and its evaluation with
latency, query by query, as a RAG system serves them.

* :class:`Pipeline` wraps the package's own retrievers (:class:`~rerank_utils.retrieval.bm25.BM25Retriever`,
  :class:`~rerank_utils.retrieval.dense.DenseRetriever`) and any reranker with ``predict(pairs, batch_size=...)``
  (a ``CrossEncoder``, a bridge, :class:`~rerank_utils.models.onnx_runtime.OnnxBridgeReranker`).
* :class:`~rerank_utils.integrations.llamaindex.LlamaIndexPipeline` is the same thing built from LlamaIndex parts: a retriever and node
  postprocessors, so both are evaluated by the same :func:`evaluate_pipeline`.
* :func:`evaluate_pipeline` runs a pipeline on every query, one at a time, and returns the metrics per query and on
  average plus the latency per query (p50, p95).

Introduced in notebook ``04_evaluation``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from rerank_utils.evaluation.latency import LatencyStats
from rerank_utils.evaluation.metrics import DEFAULT_METRICS, EvalResult, evaluate_run
from rerank_utils.retrieval.queries import rank
from rerank_utils.retrieval.reranking import rerank_run


@dataclass
class Pipeline:
    """``first_stage.search`` for ``top_k`` candidates, then (optionally) ``reranker.predict`` on them.

    ``corpus`` maps doc ids to the texts the reranker reads. With a reranker the pipeline returns its
    ``top_k`` candidates reordered by the reranker's score; ``top_n`` keeps only the first ``top_n``.
    """
    name: str
    first_stage: Any
    corpus: Mapping[str, str]
    reranker: Any | None = None
    top_k: int = 20
    top_n: int | None = None
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"Pipeline {self.name!r}: top_k={self.top_k}, must be >= 1")
        if self.top_n is not None and self.top_n < 1:
            raise ValueError(f"Pipeline {self.name!r}: top_n={self.top_n}, must be >= 1 or None")
        if not hasattr(self.first_stage, "search"):
            raise TypeError(f"Pipeline {self.name!r}: first_stage needs a search(queries, top_k) method")
        if self.reranker is not None and not hasattr(self.reranker, "predict"):
            raise TypeError(f"Pipeline {self.name!r}: reranker needs a predict(pairs, batch_size) method")

    def search(self, query: str) -> dict[str, float]:
        """``{doc_id: score}`` for one query text, best first (ties: doc id descending, as trec_eval)."""
        hits = self.first_stage.search({"q": query}, top_k=self.top_k)["q"]
        docs = rank(hits)[: self.top_k]
        if self.reranker is None or not docs:
            out = {d: float(hits[d]) for d in docs}
        else:
            missing = [d for d in docs if d not in self.corpus]
            if missing:
                raise KeyError(f"Pipeline {self.name!r}: first-stage doc ids not in the corpus: {missing[:5]}")
            scores = self.reranker.predict([(query, self.corpus[d]) for d in docs], batch_size=self.batch_size, show_progress_bar=False)
            out = {d: float(s) for d, s in zip(docs, scores)}
        return {d: out[d] for d in rank(out)[: self.top_n]}  # best first (top_n None: all)


def _ordered(scores: dict[str, float], order: list[str]) -> dict[str, float]:
    """Scores rewritten so that :func:`~rerank_utils.retrieval.queries.rank` gives ``order`` (a LlamaIndex stage's own order) even where
    the scores tie: ties are broken by a tiny, order-preserving offset."""
    out, prev = {}, None
    for i, d in enumerate(order):
        s = scores[d]
        if prev is not None and not s < prev:
            s = prev - 1e-9 * (1 + abs(prev))
        out[d] = s
        prev = s
    return out


@dataclass
class PipelineEvaluation:
    """What :func:`evaluate_pipeline` returns: the metrics (:class:`~rerank_utils.evaluation.metrics.EvalResult`, per query and
    means), the run, and the seconds each query took end to end."""
    name: str
    result: EvalResult
    run: dict[str, dict[str, float]]
    seconds: dict[str, float]

    @property
    def latency(self) -> LatencyStats:
        return LatencyStats.from_samples(list(self.seconds.values()))

    def row(self, metrics=None) -> dict[str, float]:
        """One row for a table: the mean of each metric, then p50 / p95 latency in milliseconds."""
        lat = self.latency
        metrics = metrics or self.result.metrics
        return {**{m: self.result.aggregate[m] for m in metrics}, "p50 ms": lat.p50 * 1000, "p95 ms": lat.p95 * 1000}


def evaluate_pipeline(
    pipeline: Any,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, float]],
    metrics=DEFAULT_METRICS,
    warmup: int = 1,
) -> PipelineEvaluation:
    """Run ``pipeline`` on each query (one at a time, timed end to end after ``warmup`` untimed calls) and
    evaluate the run against ``qrels``. Every query of ``queries`` is run; the metrics follow
    :func:`~rerank_utils.evaluation.metrics.evaluate_run` (queries of the qrels missing from ``queries`` score 0)."""
    if not queries:
        raise ValueError(f"evaluate_pipeline({pipeline.name!r}): no queries")
    qids = list(queries)
    for q in qids[:warmup]:
        pipeline.search(queries[q])
    run, seconds = {}, {}
    for q in qids:
        t0 = time.perf_counter()
        run[q] = pipeline.search(queries[q])
        seconds[q] = time.perf_counter() - t0
    result = evaluate_run(run, {q: qrels[q] for q in qids if q in qrels}, metrics)
    return PipelineEvaluation(pipeline.name, result, run, seconds)


# ------------------------------------------------------------------------------------------ analyses
def top_k_tradeoff(
    first_stage: Any,
    reranker: Any,
    ds,
    k_values=(5, 10, 20, 50, 100),
    batch_size: int = 32,
    metric: str = "ndcg@10",
    latency_queries: int | None = 30,
) -> list[dict]:
    """The guide's FAQ Q4, measured: for each K, ``metric`` and latency per query of reranking the first
    stage's top-K, beside the first stage's Recall@K (the ceiling: the reranker cannot find what the first
    stage missed). Rows ``{k, <metric>, p50_ms, p95_ms, first_stage_recall@k}``.

    Quality is on every query of ``ds``, from ONE scoring of each query's top-max(K): a top-K reranked is the same
    scores of that list's first K pairs, so each pair is scored once (and a pair another first stage already had
    scored with the same weights comes from :mod:`~rerank_utils.models.score_memo`). Latency is each query end to end
    through a :class:`Pipeline` (first-stage search, then ``predict`` on its top-K, nothing memoised) on the first
    ``latency_queries`` queries (``None``: all): percentiles of 30 queries, at a third of the cost of timing a
    hundred. ``latency_queries=0`` times nothing and the rows have no ``p50_ms`` / ``p95_ms``: for a second first
    stage in front of the same reranker, whose cost at each K is the same K pairs already timed."""
    if not k_values:
        raise ValueError("top_k_tradeoff: no k_values")
    if latency_queries is not None and latency_queries < 0:
        raise ValueError(f"top_k_tradeoff: latency_queries={latency_queries}, must be >= 0 (0: no latency) or None (every query)")
    k_max = max(k_values)
    fs_run = first_stage.search(ds.queries, top_k=k_max)
    scored = rerank_run(reranker, ds, fs_run, top_k=k_max, batch_size=batch_size, memo=True)
    order = {q: rank(run) for q, run in fs_run.items()}
    timed = dict(ds.queries) if latency_queries is None else dict(list(ds.queries.items())[:latency_queries])
    rows = []
    for k in k_values:
        reranked = {q: {d: scores[d] for d in order[q][:k]} for q, scores in scored.items()}
        quality = evaluate_run(reranked, ds.qrels, (metric,)).aggregate[metric]
        first = {q: {d: fs_run[q][d] for d in docs[:k]} for q, docs in order.items()}
        recall = evaluate_run(first, ds.qrels, (f"recall@{k}",)).aggregate[f"recall@{k}"]
        row = {"k": k, metric: quality}
        if timed:
            lat = evaluate_pipeline(Pipeline(f"top-{k}", first_stage, ds.corpus, reranker=reranker, top_k=k, batch_size=batch_size),
                                    timed, ds.qrels, (metric,)).latency
            row.update(p50_ms=lat.p50 * 1000, p95_ms=lat.p95 * 1000)
        rows.append({**row, "first_stage_recall@k": recall})
    return rows


def worst_queries(ds, before: EvalResult, after: EvalResult, run_before: Mapping, run_after: Mapping, n: int = 5, metric: str = "ndcg@10"):
    """The (at most) ``n`` queries the second system hurt most (``after - before`` on ``metric`` below zero, most
    negative first), as text: the query, the relevant passage, each system's first result. A DataFrame for
    failure analysis; empty when no query got worse."""
    diffs = []
    for q, vals in after.per_query.items():
        a, b = before.per_query.get(q, {}).get(metric), vals.get(metric)
        if a is None or b is None or a != a or b != b:  # NaN: no relevant doc
            continue
        if b < a:  # only the queries it hurt
            diffs.append((b - a, q))
    diffs.sort()
    rows = []
    for d, q in diffs[:n]:
        rel = [doc for doc, g in ds.qrels[q].items() if g > 0]
        top_b, top_a = rank(run_before.get(q, {}))[:1], rank(run_after.get(q, {}))[:1]
        rows.append({
            "query": ds.queries[q],
            f"{metric} before": before.per_query[q][metric],
            f"{metric} after": after.per_query[q][metric],
            "change": d,
            "relevant passage": ds.corpus[rel[0]][:160] if rel else "",
            "first result before": (ds.corpus[top_b[0]][:160] + (" (relevant)" if top_b[0] in rel else "")) if top_b else "",
            "first result after": (ds.corpus[top_a[0]][:160] + (" (relevant)" if top_a[0] in rel else "")) if top_a else "",
        })
    return pd.DataFrame(rows)
