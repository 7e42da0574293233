"""Is B better than A on the same queries? :func:`paired_comparison` gives the mean difference of a per-query metric
with a paired bootstrap 95 % interval and a paired randomisation p-value (a few lines of numpy, not scipy: issue 13
dropped it; :func:`paired_comparison` says why); :func:`compare` does it for two
:class:`~rerank_utils.evaluation.metrics.EvalResult`. Introduced in notebook ``03_fine_tuning``; ``04_evaluation``
reports with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rerank_utils.evaluation.metrics import EvalResult, parse_metric


# ------------------------------------------------------------------------------------------ intervals
@dataclass
class PairedComparison:
    """System B minus system A on the same queries: mean difference, bootstrap interval, p-value."""
    metric: str
    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float
    p_value: float
    n_queries: int
    wins: int
    losses: int
    ties: int
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        """The interval excludes zero (same conclusion as the test at ``1 - confidence``)."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return (
            f"{self.metric}: {self.mean_a:.4f} -> {self.mean_b:.4f} ({self.diff:+.4f}, "
            f"{self.confidence:.0%} CI [{self.low:+.4f}, {self.high:+.4f}], p={self.p_value:.4f}; "
            f"{self.wins} wins / {self.losses} losses / {self.ties} ties over {self.n_queries} queries)"
        )


def paired_comparison(
    per_query_a: dict[str, float],
    per_query_b: dict[str, float],
    metric: str = "",
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Paired bootstrap interval of mean(b - a) and a paired sign-flip randomisation test (two-sided).

    Both inputs map query id -> metric value (e.g. ``EvalResult.per_query[q]["ndcg@10"]``); they must
    cover the same queries (NaN values, i.e. queries without relevant documents, are left out of both).
    The bootstrap resamples queries with replacement; the test flips the sign of each query's difference
    at random, which is exact under the null hypothesis that the two systems are exchangeable.

    A few lines of numpy rather than ``scipy.stats.bootstrap`` / ``permutation_test``: those compute the same two
    things (the bootstrap with BCa intervals by default), but with their own resampling every interval this
    repository has published would move in its third decimal for no gain in correctness; the known-case tests pin
    this implementation, and scipy is not a dependency of the package.
    """
    if set(per_query_a) != set(per_query_b):
        only_a, only_b = set(per_query_a) - set(per_query_b), set(per_query_b) - set(per_query_a)
        raise ValueError(
            f"paired_comparison needs the same queries on both sides: {len(only_a)} only in a, {len(only_b)} only in b"
        )
    qids = [q for q in per_query_a if not (math.isnan(per_query_a[q]) or math.isnan(per_query_b[q]))]
    if not qids:
        raise ValueError("paired_comparison: no query with a value on both sides")
    a = np.array([per_query_a[q] for q in qids], dtype=float)
    b = np.array([per_query_b[q] for q in qids], dtype=float)
    d = b - a
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_resamples, len(d)))
    boot = d[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    signs = rng.choice([-1.0, 1.0], size=(n_resamples, len(d)))
    null = np.abs((signs * d).mean(axis=1))
    p = (1 + np.sum(null >= abs(d.mean()) - 1e-12)) / (n_resamples + 1)
    return PairedComparison(
        metric=metric, mean_a=float(a.mean()), mean_b=float(b.mean()), diff=float(d.mean()), low=float(low), high=float(high),
        p_value=float(p), n_queries=len(d), wins=int((d > 1e-12).sum()), losses=int((d < -1e-12).sum()),
        ties=int((np.abs(d) <= 1e-12).sum()), confidence=confidence,
    )


def compare(result_a: "EvalResult", result_b: "EvalResult", metric: str = "ndcg@10", **kwargs) -> PairedComparison:
    """:func:`paired_comparison` of one metric between two :class:`~rerank_utils.evaluation.metrics.EvalResult` on the same queries."""
    key = parse_metric(metric).name
    pa = {q: m[key] for q, m in result_a.per_query.items()}
    pb = {q: m[key] for q, m in result_b.per_query.items()}
    return paired_comparison(pa, pb, metric=key, **kwargs)
