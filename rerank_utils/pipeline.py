"""A retrieval pipeline (a first stage, optionally a reranker over its top-K) and its evaluation with
latency, query by query, as a RAG system serves them.

* :class:`Pipeline` wraps the package's own retrievers (:class:`~rerank_utils.retrieval.BM25Retriever`,
  :class:`~rerank_utils.retrieval.DenseRetriever`) and any reranker with ``predict(pairs, batch_size=...)``
  (a ``CrossEncoder``, a bridge, :class:`~rerank_utils.bridge.OnnxBridgeReranker`).
* :class:`LlamaIndexPipeline` is the same thing built from LlamaIndex parts: a retriever and node
  postprocessors, so both are evaluated by the same :func:`evaluate`.
* :func:`evaluate` runs a pipeline on every query, one at a time, and returns the metrics per query and on
  average plus the latency per query (p50, p95).

Introduced in notebook ``04_evaluation``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from .evaluation import DEFAULT_METRICS, EvalResult, evaluate_run, rank
from .latency import LatencyStats


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


@dataclass
class LlamaIndexPipeline:
    """A LlamaIndex retriever (``similarity_top_k`` = the candidates) followed by node postprocessors (e.g.
    ``SentenceTransformerRerank`` or :func:`rerank_utils.llamaindex.cross_encoder_reranker`); node ids must
    be the corpus's doc ids (as :func:`rerank_utils.llamaindex.build_vector_index` makes them)."""

    name: str
    retriever: Any
    postprocessors: list = field(default_factory=list)

    def search(self, query: str) -> dict[str, float]:
        from llama_index.core.schema import QueryBundle

        bundle = QueryBundle(query)
        nodes = self.retriever.retrieve(bundle)
        for post in self.postprocessors:
            nodes = post.postprocess_nodes(nodes, query_bundle=bundle)
        out: dict[str, float] = {}
        for n in nodes:  # in the order the last stage returned them: scores may tie
            out[n.node.node_id] = float(n.score) if n.score is not None else float("nan")
        return _ordered(out, [n.node.node_id for n in nodes])


def _ordered(scores: dict[str, float], order: list[str]) -> dict[str, float]:
    """Scores rewritten so that :func:`rank` gives ``order`` (a LlamaIndex stage's own order) even where
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
    """What :func:`evaluate` returns: the metrics (:class:`~rerank_utils.evaluation.EvalResult`, per query and
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


def evaluate(
    pipeline: Pipeline | LlamaIndexPipeline,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, float]],
    metrics=DEFAULT_METRICS,
    warmup: int = 1,
) -> PipelineEvaluation:
    """Run ``pipeline`` on each query (one at a time, timed end to end after ``warmup`` untimed calls) and
    evaluate the run against ``qrels``. Every query of ``queries`` is run; the metrics follow
    :func:`~rerank_utils.evaluation.evaluate_run` (queries of the qrels missing from ``queries`` score 0)."""
    if not queries:
        raise ValueError(f"evaluate({pipeline.name!r}): no queries")
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
