"""Second stage: rerank a first stage's candidates with a cross-encoder, and fuse scores.

Introduced in notebook ``03_fine_tuning`` (used again in ``04_evaluation``).
"""

from __future__ import annotations

import numpy as np

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.models.score_memo import memo_raw_scores
from rerank_utils.models.scores import activation_of, raw_scores
from rerank_utils.retrieval.queries import rank


def candidates(first_stage: dict[str, dict], top_k: int) -> dict[str, list[str]]:
    """The first ``top_k`` doc ids of each query of a first-stage run, in rank order."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    return {q: rank(run)[:top_k] for q, run in first_stage.items()}


def rerank_run(
    model,
    ds: RetrievalDataset,
    first_stage: dict[str, dict],
    top_k: int = 20,
    batch_size: int = 32,
    show_progress_bar: bool = False,
    memo: bool = False,
) -> dict[str, dict[str, float]]:
    """Score each query's first-stage top-``top_k`` with ``model.predict`` and return the reranked run.

    Only queries present in both ``ds.queries`` and ``first_stage`` are reranked. All pairs are scored in
    one batched ``predict`` call. Documents below ``top_k`` are dropped (the reranker never saw them). The scores
    are ``predict``'s, computed from the raw scores in float64 (:func:`~rerank_utils.models.scores.ranking_scores`):
    a float32 sigmoid would tie every document above a logit of about 17. ``memo=True`` scores only the pairs these
    weights have not scored before (:mod:`~rerank_utils.models.score_memo`): for evaluation, never for timing.
    """
    cand = candidates({q: first_stage[q] for q in ds.queries if q in first_stage}, top_k)
    pairs = [(ds.queries[q], ds.corpus[d]) for q, docs in cand.items() for d in docs]
    if not pairs:
        return {q: {} for q in cand}
    raw = (memo_raw_scores if memo else raw_scores)(model, pairs, batch_size=batch_size, show_progress_bar=show_progress_bar)
    scores = activation_of(model)(raw)
    out: dict[str, dict[str, float]] = {}
    i = 0
    for q, docs in cand.items():
        out[q] = {d: float(s) for d, s in zip(docs, scores[i : i + len(docs)])}
        i += len(docs)
    return out


def zscore_fusion(run_a: dict[str, dict], run_b: dict[str, dict], weight_a: float = 0.5) -> dict[str, dict[str, float]]:
    """Fuse two runs over the same candidates: ``weight_a * z(a) + (1 - weight_a) * z(b)`` per query,
    with scores z-normalised within each query (a doc missing from one run gets that run's minimum)."""
    out = {}
    for q in run_a:
        a, b = run_a[q], run_b.get(q, {})
        docs = list(dict.fromkeys(list(a) + list(b)))
        za, zb = _z(a, docs), _z(b, docs)
        out[q] = {d: weight_a * za[d] + (1 - weight_a) * zb[d] for d in docs}
    return out


def fuse_with_first_stage(reranked: dict[str, dict], first_stage: dict[str, dict], weight: float, top_k: int = 20):
    """Fuse a reranked run with the first stage's scores of the same top-``top_k`` candidates:
    ``weight`` on the reranker (1.0 = the reranker alone, 0.0 = the first stage alone)."""
    top = {q: {d: first_stage[q][d] for d in rank(first_stage[q])[:top_k]} for q in reranked if q in first_stage}
    return zscore_fusion(reranked, top, weight_a=weight)


def _z(scores: dict[str, float], docs: list[str]) -> dict[str, float]:
    if not scores:
        return {d: 0.0 for d in docs}
    low = min(scores.values())
    vals = np.array([scores.get(d, low) for d in docs], dtype=float)
    std = vals.std()
    z = (vals - vals.mean()) / std if std > 0 else np.zeros_like(vals)
    return dict(zip(docs, z.tolist()))


