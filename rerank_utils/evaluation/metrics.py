"""Ranking metrics: Hit@k, MRR@k, nDCG@k, Recall@k, MAP (and MAP@k), P@k, and ``evaluate_run``.

Introduced in notebooks ``00_concepts`` and ``04_evaluation``.

Definitions (this is the contract; the unit tests check each point, and check agreement with
``trec_eval`` through ``ir_measures``/``pytrec_eval`` to 1e-6):

Run
    A *run* for one query is either

    * a ranked list of doc ids: the order is the ranking (position 0 is rank 1), or
    * a dict ``doc id -> score``: ranked by score descending; ties are broken by doc id in
      DESCENDING string order, exactly as ``trec_eval`` does, so our numbers agree with
      trec_eval / pytrec_eval / ir_measures even when scores tie.

    :func:`rerank_utils.retrieval.queries.rank` turns either form into the ranked list. A ranked list containing the same doc id
    twice is an error (``ValueError`` naming the doc id); a NaN score is an error too.
    A run for a whole collection is a dict ``query id -> run for one query``.

Qrels
    The judgements for one query: a dict ``doc id -> grade`` (int or float). A doc is *relevant*
    when its grade is > 0. Docs in the run that are absent from the qrels are non-relevant
    (unjudged = non-relevant, as in trec_eval). For integer grades this is trec_eval's default
    (``relevance_level`` 1).

Per-query metrics (``k`` must be a positive ``int``, else ``ValueError``; the top k is the first
``min(k, len(ranking))`` docs: a ranking shorter than k is evaluated as it is, the missing ranks
count as non-relevant)

* ``hit_at_k``: 1.0 if at least one relevant doc is in the top k, else 0.0 (trec_eval ``success_k``).
* ``mrr_at_k``: 1 / rank of the first relevant doc if it is in the top k, else 0.0 (the per-query
  reciprocal rank; its mean over queries is MRR@k).
* ``ndcg_at_k``: graded nDCG with linear gain (gain = grade, a grade <= 0 gains nothing) and
  discount ``1 / log2(rank + 1)``. The ideal DCG comes from the best possible ordering of ALL judged
  relevant docs of the query (retrieved or not), cut at k, as in trec_eval's ``ndcg_cut``.
* ``recall_at_k``: relevant docs in the top k / number of relevant docs.
* ``precision_at_k``: relevant docs in the top k / k (always divided by k, as trec_eval ``P_k``).
* ``average_precision``: sum, over the relevant docs found at ranks r (within the cut k when k is
  given), of precision@r, divided by the number of relevant docs (retrieved or not): trec_eval's
  ``map`` (no k) and ``map_cut_k``.

Edge cases

* A query with NO relevant doc: every per-query metric returns ``float('nan')``;
  :func:`evaluate_run` leaves it out of the means and lists it in ``skipped_no_relevant``
  (it is counted, never silently dropped).
* An empty ranking (with relevant docs judged): every metric is 0.0.
* A query present in the qrels but absent from the run: evaluated as an empty ranking (0.0) and
  listed in ``missing_in_run``. Queries of the run absent from the qrels are not evaluated and are
  listed in ``not_in_qrels``.

Metric names accepted by :func:`evaluate_run` (case-insensitive): ``hit@K``, ``mrr@K``,
``ndcg@K``, ``recall@K``, ``p@K`` (alias ``precision@K``), ``map`` and ``map@K``, K a positive
integer. Their ir_measures / trec_eval counterparts: ``Success@K``, ``RR@K``, ``nDCG@K``, ``R@K``,
``P@K``, ``AP`` and ``AP@K``. (Note: ir_measures computes ``RR@K`` with its ``msmarco`` provider,
which breaks score ties by doc id ASCENDING; trec_eval's ``recip_rank``, which we follow, breaks them
descending. Without ties the two agree.)
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence, Union

import pandas as pd

from rerank_utils.retrieval.queries import rank

#: a run for one query: a ranked list of doc ids, or a dict doc id -> score
Run = Union[Sequence[str], Mapping[str, float]]
#: judgements for one query: doc id -> grade; grade > 0 means relevant
Qrel = Mapping[str, float]

DEFAULT_METRICS: tuple[str, ...] = ("hit@1", "hit@3", "hit@5", "mrr@10", "ndcg@10", "map", "recall@20")


def _check_k(k: Any, *, allow_none: bool = False) -> None:
    if k is None and allow_none:
        return
    # bool is an int subclass: reject it explicitly (hit_at_k(r, q, True) is a bug, not k=1)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive int{' or None' if allow_none else ''}, got {k!r}")


def _relevant(qrel: Qrel) -> set:
    return {doc_id for doc_id, grade in qrel.items() if grade > 0}


def _hit(ranking: list, qrel: Qrel, rel: set, k: int) -> float:
    return 1.0 if any(d in rel for d in ranking[:k]) else 0.0


def _rr(ranking: list, qrel: Qrel, rel: set, k: int) -> float:
    return next((1.0 / (i + 1) for i, d in enumerate(ranking[:k]) if d in rel), 0.0)


def _ndcg(ranking: list, qrel: Qrel, rel: set, k: int) -> float:
    dcg = sum(float(qrel[d]) / math.log2(i + 2) for i, d in enumerate(ranking[:k]) if d in rel)
    ideal_gains = sorted((float(qrel[d]) for d in rel), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal_gains))
    return dcg / idcg


def _recall(ranking: list, qrel: Qrel, rel: set, k: int) -> float:
    return sum(1 for d in ranking[:k] if d in rel) / len(rel)


def _precision(ranking: list, qrel: Qrel, rel: set, k: int) -> float:
    return sum(1 for d in ranking[:k] if d in rel) / k


def _ap(ranking: list, qrel: Qrel, rel: set, k: int | None) -> float:
    ranks = [i for i, d in enumerate(ranking if k is None else ranking[:k]) if d in rel]
    return sum(found / (i + 1) for found, i in enumerate(ranks, start=1)) / len(rel)


def _public(fn, run: Run, qrel: Qrel, k, *, allow_none: bool = False) -> float:
    _check_k(k, allow_none=allow_none)
    ranking = rank(run)
    rel = _relevant(qrel)
    if not rel:
        return float("nan")
    return fn(ranking, qrel, rel, k if k is None else int(k))


def hit_at_k(ranking: Run, qrel: Qrel, k: int) -> float:
    """1.0 if a relevant doc (grade > 0) is among the top ``k`` of ``ranking``, else 0.0.

    NaN when ``qrel`` has no relevant doc. ``ranking`` may be a list or a dict doc id -> score.
    """
    return _public(_hit, ranking, qrel, k)


def mrr_at_k(ranking: Run, qrel: Qrel, k: int) -> float:
    """Reciprocal rank of the first relevant doc within the top ``k`` (1/rank), else 0.0.

    NaN when ``qrel`` has no relevant doc. The mean over queries is MRR@k.
    """
    return _public(_rr, ranking, qrel, k)


def ndcg_at_k(ranking: Run, qrel: Qrel, k: int) -> float:
    """Graded nDCG@k: linear gain (= grade), discount 1/log2(rank + 1), trec_eval ``ndcg_cut``.

    ``DCG@k = sum_{r=1..k} grade(doc at r) / log2(r + 1)`` (non-relevant and unjudged docs gain 0);
    the ideal DCG@k sorts ALL relevant docs of ``qrel`` by grade descending and cuts at k, so
    relevant docs that were not retrieved still lower the score. NaN when nothing is relevant.
    """
    return _public(_ndcg, ranking, qrel, k)


def recall_at_k(ranking: Run, qrel: Qrel, k: int) -> float:
    """Relevant docs in the top ``k`` / number of relevant docs in ``qrel``. NaN if none is relevant."""
    return _public(_recall, ranking, qrel, k)


def precision_at_k(ranking: Run, qrel: Qrel, k: int) -> float:
    """Relevant docs in the top ``k`` / ``k`` (divided by k even if fewer were retrieved, as trec_eval).

    NaN when ``qrel`` has no relevant doc (consistent with the other metrics).
    """
    return _public(_precision, ranking, qrel, k)


def average_precision(ranking: Run, qrel: Qrel, k: int | None = None) -> float:
    """Average precision of the whole ranking (``k=None``) or of its top ``k``.

    ``AP = (1 / R) * sum over relevant docs d retrieved at rank r (r <= k) of precision@r``, with R
    the number of relevant docs in ``qrel`` (retrieved or not): trec_eval's ``map`` / ``map_cut_k``.
    NaN when ``qrel`` has no relevant doc.
    """
    return _public(_ap, ranking, qrel, k, allow_none=True)


_FAMILIES = {"hit": _hit, "mrr": _rr, "ndcg": _ndcg, "recall": _recall, "p": _precision, "map": _ap}  # map: cutoff optional
_ALIASES = {"precision": "p"}
ALLOWED_METRICS = "hit@K, mrr@K, ndcg@K, recall@K, p@K (or precision@K), map, map@K (K a positive integer)"
_NAME_RE = re.compile(r"^([a-z]+)(?:@(\d+))?$")


@dataclass(frozen=True)
class Metric:
    """A parsed metric name: ``family`` (hit, mrr, ndcg, recall, p, map) and cutoff ``k`` (or None)."""
    family: str
    k: int | None

    @property
    def name(self) -> str:
        """The canonical name, e.g. ``ndcg@10`` or ``map``."""
        return self.family if self.k is None else f"{self.family}@{self.k}"

    def __call__(self, ranking: list, qrel: Qrel, rel: set) -> float:
        return _FAMILIES[self.family](ranking, qrel, rel, self.k)


def parse_metric(name: str) -> Metric:
    """Parse a metric name such as ``"ndcg@10"``, ``"hit@3"``, ``"map"`` or ``"P@5"`` (case-insensitive).

    Raises ``ValueError`` listing the allowed names for anything else.
    """
    m = _NAME_RE.match(str(name).strip().lower())
    family = _ALIASES.get(m.group(1), m.group(1)) if m else None
    if m is None or family not in _FAMILIES:
        raise ValueError(f"unknown metric {name!r}; allowed: {ALLOWED_METRICS}")
    k = int(m.group(2)) if m.group(2) is not None else None
    if (family != "map" and k is None) or (k is not None and k < 1):
        raise ValueError(f"metric {name!r} needs a positive cutoff; allowed: {ALLOWED_METRICS}")
    return Metric(family, k)


@dataclass
class EvalResult:
    """What :func:`evaluate_run` returns.

    Attributes:
        metrics: canonical metric names, in the order asked.
        aggregate: metric -> mean over the ``n_evaluated`` queries (NaN if there are none).
        per_query: qid -> metric -> value, for every query of the qrels (in qrels order); the
            queries without relevant docs are there too, with NaN values.
        n_evaluated: number of queries in the means (queries of the qrels with >= 1 relevant doc).
        skipped_no_relevant: qids of the qrels with no relevant doc (left out of the means).
        missing_in_run: qids of the qrels absent from the run (scored as an empty ranking: 0).
        not_in_qrels: qids of the run absent from the qrels (not evaluated).
    """
    metrics: tuple[str, ...]
    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]
    n_evaluated: int
    skipped_no_relevant: list[str] = field(default_factory=list)
    missing_in_run: list[str] = field(default_factory=list)
    not_in_qrels: list[str] = field(default_factory=list)

    def to_frame(self):
        """A pandas DataFrame, one row per query of the qrels (index ``qid``), one column per metric."""
        df = pd.DataFrame.from_dict(self.per_query, orient="index", columns=list(self.metrics))
        df.index.name = "qid"
        return df

    def table(self, name: str | None = None, digits: int | None = None) -> dict[str, Any]:
        """One flat record for comparison tables: ``{"name": ..., <metric>: mean, ..., "n_evaluated": ...}``.

        ``name`` (e.g. ``"bm25"`` or ``"bm25 + reranker"``) is included when given; ``digits`` rounds
        the means. The counts of skipped / missing queries are included so that they stay visible.
        """
        rec: dict[str, Any] = {} if name is None else {"name": name}
        for m in self.metrics:
            v = self.aggregate[m]
            rec[m] = round(v, digits) if digits is not None and not math.isnan(v) else v
        rec["n_evaluated"] = self.n_evaluated
        rec["n_skipped_no_relevant"] = len(self.skipped_no_relevant)
        rec["n_missing_in_run"] = len(self.missing_in_run)
        return rec

    def __str__(self) -> str:
        means = ", ".join(f"{m}={self.aggregate[m]:.4f}" for m in self.metrics)
        notes = [f"{self.n_evaluated} queries"]
        if self.skipped_no_relevant:
            notes.append(f"{len(self.skipped_no_relevant)} skipped (no relevant doc)")
        if self.missing_in_run:
            notes.append(f"{len(self.missing_in_run)} missing in run (scored 0)")
        return f"{means} [{'; '.join(notes)}]"


def evaluate_run(
    run: Mapping[str, Run],
    qrels: Mapping[str, Qrel],
    metrics: Iterable[str] = DEFAULT_METRICS,
) -> EvalResult:
    """Evaluate a run (qid -> ranked list or dict doc id -> score) against qrels (qid -> doc id -> grade).

    Every query of ``qrels`` is considered: one without a relevant doc gets NaN and is listed in
    ``skipped_no_relevant`` (not in the means); one absent from ``run`` is scored as an empty ranking
    (0.0) and listed in ``missing_in_run``. Queries of ``run`` without qrels are listed in
    ``not_in_qrels``. ``aggregate`` holds the mean of each metric over the remaining ``n_evaluated``
    queries. See the module docstring for the definitions and the allowed metric names.
    """
    if isinstance(metrics, str):
        metrics = (metrics,)
    parsed = [parse_metric(m) for m in metrics]
    if not parsed:
        raise ValueError("no metric given")
    by_name = {p.name: p for p in parsed}  # deduped, in the order asked
    names = tuple(by_name)

    per_query: dict[str, dict[str, float]] = {}
    skipped, missing, scored = [], [], []
    for qid, qrel in qrels.items():
        if qid not in run:
            missing.append(qid)
        ranking = rank(run[qid]) if qid in run else []
        rel = _relevant(qrel)
        if rel:
            per_query[qid] = {name: m(ranking, qrel, rel) for name, m in by_name.items()}
            scored.append(per_query[qid])
        else:
            skipped.append(qid)
            per_query[qid] = dict.fromkeys(names, float("nan"))
    n = len(scored)
    aggregate = {name: (sum(v[name] for v in scored) / n if n else float("nan")) for name in names}
    return EvalResult(metrics=names, aggregate=aggregate, per_query=per_query, n_evaluated=n, skipped_no_relevant=skipped,
                      missing_in_run=missing, not_in_qrels=[qid for qid in run if qid not in qrels])


def run_agreement(run_a: dict[str, Run], run_b: dict[str, Run], k: int = 10) -> float:
    """Share of the queries of ``run_a`` whose top-``k`` doc ids are identical, in the same order, in ``run_b``.

    Used to check that two implementations of the same retriever (e.g. LlamaIndex's and ours, notebook
    ``00_concepts``) rank alike. A query missing from ``run_b`` counts as a disagreement.
    """
    _check_k(k)
    if not run_a:
        raise ValueError("run_agreement(): run_a is empty")
    same = sum(1 for q, r in run_a.items() if q in run_b and rank(r)[:k] == rank(run_b[q])[:k])
    return same / len(run_a)
