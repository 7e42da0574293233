"""Measure what a reranking stage costs: bi-encoder vs cross-encoder, latency against top-K.

Introduced in notebook ``00_concepts``. Speed *targets* are measured by the scripts in
``benchmarks/``; these helpers only describe costs inside a notebook.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rerank_utils.evaluation.metrics import evaluate_run, run_agreement
from rerank_utils.retrieval.reranking import rerank_run


@dataclass
class LatencyStats:
    n: int
    mean: float
    p50: float
    p95: float

    @classmethod
    def from_samples(cls, seconds: list[float]) -> "LatencyStats":
        if not seconds:
            raise ValueError("no timings to summarise")
        arr = np.asarray(seconds, dtype=float)
        p50, p95 = np.percentile(arr, [50, 95])
        return cls(n=len(arr), mean=float(arr.mean()), p50=float(p50), p95=float(p95))


def time_calls(fn, inputs, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn(x)`` for each ``x`` in ``inputs``, after ``warmup`` untimed calls."""
    inputs = list(inputs)
    for x in inputs[:warmup]:
        fn(x)
    out = []
    for x in inputs:
        t0 = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - t0)
    return out


def rerank_latency_by_k(
    cross_encoder,
    queries: dict[str, str],
    candidates: dict[str, list[str]],
    corpus: dict[str, str],
    k_values: list[int],
    batch_size: int = 32,
) -> list[dict]:
    """For each K: seconds per query to score the first K candidates of each query with a cross-encoder.

    ``candidates[qid]`` is the first stage's ranked doc ids (at least ``max(k_values)`` for a fair
    comparison; fewer are used as they are). Returns rows ``{k, pairs, mean_s, p50_s, p95_s, pairs_per_s}``.
    """
    rows = []
    qids = list(queries)
    for k in k_values:
        pairs_per_query = [[(queries[q], corpus[d]) for d in candidates[q][:k]] for q in qids]
        seconds = time_calls(lambda pairs: cross_encoder.predict(pairs, batch_size=batch_size, show_progress_bar=False), pairs_per_query)
        stats = LatencyStats.from_samples(seconds)
        n_pairs = sum(len(p) for p in pairs_per_query)
        rows.append({"k": k, "pairs": n_pairs, "mean_s": stats.mean, "p50_s": stats.p50, "p95_s": stats.p95,
                     "pairs_per_s": n_pairs / sum(seconds)})
    return rows


def bi_encoder_costs(model, corpus: dict[str, str], queries: dict[str, str], batch_size: int = 64) -> dict:
    """Encode the corpus once, then time each query (encode + dot product over the stored vectors)."""
    texts = list(corpus.values())
    t0 = time.perf_counter()
    doc_emb = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    corpus_seconds = time.perf_counter() - t0

    def one(q: str):
        qv = model.encode([q], convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        return doc_emb @ qv[0]

    stats = LatencyStats.from_samples(time_calls(one, list(queries.values())))
    return {"corpus_docs": len(texts), "corpus_encode_s": corpus_seconds, "docs_per_s": len(texts) / corpus_seconds,
            "query_p50_s": stats.p50, "query_p95_s": stats.p95}


def bi_vs_cross_table(bi_costs: dict, latency_rows: list[dict], bi_ndcg10: float, n_docs: int):
    """The guide's bi-encoder vs cross-encoder comparison, with measured numbers instead of adjectives.

    ``bi_costs`` from :func:`bi_encoder_costs`; ``latency_rows`` from :func:`rerank_latency_by_k`.
    """
    by_k = {r["k"]: r for r in latency_rows}
    k_show = 20 if 20 in by_k else max(by_k)
    pairs_per_s = sum(r["pairs"] for r in latency_rows) / sum(r["pairs"] / r["pairs_per_s"] for r in latency_rows)
    rows = {
        "how it encodes": ("query and document separately", "query and document together, one pass per pair"),
        "work done ahead of time": (
            f"the corpus, once: {bi_costs['corpus_encode_s']:.1f} s for {bi_costs['corpus_docs']} docs "
            f"({bi_costs['docs_per_s']:.0f} docs/s)",
            "none: every pair is scored at query time",
        ),
        "cost per query (measured)": (
            f"{bi_costs['query_p50_s'] * 1000:.1f} ms p50 over all {n_docs} docs",
            f"{by_k[k_show]['p50_s'] * 1000:.0f} ms p50 for the top-{k_show} ({pairs_per_s:.0f} pairs/s)",
        ),
        "scoring the whole corpus per query": (
            "the same dot product, already included",
            f"≈ {n_docs / pairs_per_s:.1f} s per query: why it only reranks a shortlist",
        ),
        "role": ("retrieve top-K from millions of documents", "rerank the top-K (tens to a hundred)"),
        "quality on this data (NDCG@10)": (f"{bi_ndcg10:.3f}", "measured after fine-tuning: notebooks 03 and 04"),
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["bi-encoder", "cross-encoder"])


def compare_backends(models: dict, ds, first_stage: dict, top_k: int = 20, batch_size: int = 32, qrels: dict | None = None,
                     latency_queries: int = 0) -> list[dict]:
    """The same reranker on several backends (``{label: model}``, the first is the reference, e.g. PyTorch then
    ONNX): pairs/s reranking every query's top-``top_k`` in one call, the share of queries whose order is the
    reference's, and the largest score difference from it. With ``qrels``: NDCG@10 of each reranked run and
    its change from the reference; with ``latency_queries``: p50 / p95 ms of one ``predict`` of a query's
    top-``top_k`` (the first that many queries). Introduced in notebook ``14_bridge_reranker``; used for the
    speed-ups of ``05_deployment``."""
    if not models:
        raise ValueError("compare_backends: no models given")
    rows, reference, ref_ndcg = [], None, None
    qids = [q for q in ds.queries if first_stage.get(q)][:latency_queries]
    for label, model in models.items():
        t0 = time.perf_counter()
        run = rerank_run(model, ds, first_stage, top_k=top_k, batch_size=batch_size)
        seconds = time.perf_counter() - t0
        reference = reference or run
        row = {
            "backend": label,
            "pairs_per_s": sum(len(r) for r in run.values()) / seconds,
            "same_order": run_agreement(reference, run, k=top_k),
            "max_abs_diff": max((abs(reference[q][d] - run[q][d]) for q in reference for d in reference[q]), default=0.0),
        }
        if qids:
            pairs = [[(ds.queries[q], ds.corpus[d]) for d in sorted(first_stage[q], key=lambda d: -first_stage[q][d])[:top_k]] for q in qids]
            stats = LatencyStats.from_samples(time_calls(lambda p: model.predict(p, batch_size=batch_size, show_progress_bar=False), pairs))
            row["p50_ms"], row["p95_ms"] = stats.p50 * 1000, stats.p95 * 1000
        if qrels is not None:
            row["ndcg@10"] = evaluate_run(run, qrels, ["ndcg@10"]).aggregate["ndcg@10"]
            ref_ndcg = row["ndcg@10"] if ref_ndcg is None else ref_ndcg
            row["ndcg@10_change"] = row["ndcg@10"] - ref_ndcg
        rows.append(row)
    return rows
