"""Negative mining for cross-encoder training: random, BM25, dense and mixed negatives.

Introduced in notebook ``02_negative_mining``.

A cross-encoder learns from (query, passage, label) pairs, so besides the judged positives it needs
*negatives*. :func:`mine_negatives` picks them per query:

* ``"random"``: uniform draws from the corpus (easy negatives).
* ``"bm25"`` / ``"dense"``: the top of a first-stage retriever's list (hard negatives), taken in rank
  order (sentence-transformers' ``sampling_strategy="top"``).
* ``"mixed"``: ``round(N * hard_fraction)`` hard negatives from ``hard_source`` and the rest random.
  Hard negatives alone can stall a reranker's training (sentence-transformers #3085; the repository's
  own prototype saw the same), mixing in random ones is the usual advice.

The ratio is **1 positive : N negatives per query**: every query gets exactly ``num_negatives``
distinct negatives (when the corpus can supply them; otherwise as many as possible and the query is
listed in ``report.short_queries``, never silently). A query with several positives still gets N
negatives; at training time each positive is paired with those same N (:func:`rerank_utils.training.samples.training_rows`).
Queries without any positive are not mined (listed in ``report.no_positive_queries``).

Rules that always hold:

* a query's positives (qrels grade > 0) are never among its negatives, nor any document whose text
  equals a positive's text (after ``strip()``): such duplicates would be labelled both 1 and 0;
* ``skip_top`` ignores the first ranks of the retriever's list (counted after removing positives and
  their duplicates), where unjudged relevant documents (false negatives) are most likely;
* the margins of sentence-transformers' ``mine_hard_negatives`` drop a candidate whose retriever score
  is too close to (or above) the query's BEST positive score under the same retriever:
  ``score > pos - relative_margin * |pos|`` (= ``pos * (1 - relative_margin)`` for ``pos > 0``) or
  ``score > pos - absolute_margin``;
* the optional cross-encoder filter drops hard candidates whose cross-encoder score is above
  ``ce_threshold`` (default: the lowest score it gives that query's positives);
* hard candidates dropped or skipped are not drawn as random negatives either; when there are too
  few hard candidates the rest is topped up with random negatives (``report.topped_up``);
* seeded and deterministic: each query has its own random stream seeded by ``(seed, query id)``, so a
  query's random negatives do not depend on the other queries or on ``chunk_size``.

Scale: queries are processed ``chunk_size`` at a time; the dense path goes through
:meth:`~rerank_utils.retrieval.dense.DenseRetriever.search`, which holds at most a ``chunk_size x n_docs`` score matrix, so a full
queries x corpus matrix is never built (``benchmarks/mining_scale.py`` measures 10k x 100k).
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from rerank_utils.data.convert import dataset_to_triples
from rerank_utils.data.records import RetrievalDataset
from rerank_utils.models.loading import load_bi_encoder
from rerank_utils.retrieval.bm25 import BM25Retriever
from rerank_utils.retrieval.dense import DenseRetriever
from rerank_utils.retrieval.tokenize import tokenize

STRATEGIES: tuple[str, ...] = ("random", "bm25", "dense", "mixed")
HARD_SOURCES: tuple[str, ...] = ("dense", "bm25")
_MAX_EXAMPLES = 5


@dataclass
class MiningConfig:
    """How to mine. See the module docstring for the rules.

    ``num_negatives`` is N in the 1 positive : N negatives ratio (the guide suggests 1:1 to 1:4).
    ``range_max`` candidates are taken from the retriever per query; ``skip_top`` of them (after
    positives are removed) are ignored. ``hard_fraction`` (``"mixed"`` only) gives
    ``round(N * hard_fraction)`` hard negatives, rounding halves up.
    """
    strategy: str = "dense"
    num_negatives: int = 4
    hard_source: str = "dense"
    hard_fraction: float = 0.5
    skip_top: int = 0
    range_max: int = 50
    relative_margin: float | None = 0.05
    absolute_margin: float | None = None
    seed: int = 42
    lang: str = "auto"
    dense_backend: str = "exact"  # "exact" (numpy, chunked) or "faiss" (large corpora; needs faiss-cpu)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.dense_backend not in ("exact", "faiss"):
            raise ValueError(f"dense_backend must be 'exact' or 'faiss', got {self.dense_backend!r}")
        if self.hard_source not in HARD_SOURCES:
            raise ValueError(f"hard_source must be one of {HARD_SOURCES}, got {self.hard_source!r}")
        for name in ("num_negatives", "range_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(self.skip_top, bool) or not isinstance(self.skip_top, int) or self.skip_top < 0:
            raise ValueError(f"skip_top must be an int >= 0, got {self.skip_top!r}")
        if not 0.0 <= float(self.hard_fraction) <= 1.0:
            raise ValueError(f"hard_fraction must be in [0, 1], got {self.hard_fraction!r}")
        for name in ("relative_margin", "absolute_margin"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(float(value)) or float(value) < 0):
                raise ValueError(f"{name} must be None or a number >= 0, got {value!r}")

    @property
    def source(self) -> str | None:
        """The retriever that supplies hard negatives (``None`` for ``"random"``)."""
        if self.strategy == "random":
            return None
        return self.hard_source if self.strategy == "mixed" else self.strategy

    @property
    def n_hard(self) -> int:
        """Hard negatives wanted per query (the rest is random)."""
        if self.strategy == "random":
            return 0
        if self.strategy == "mixed":
            return int(math.floor(self.num_negatives * float(self.hard_fraction) + 0.5))
        return self.num_negatives


@dataclass
class MiningReport:
    """What mining did, with every drop counted.

    ``counts[strategy]``: negatives kept per strategy (``"dense"``, ``"bm25"``, ``"random"``).
    ``topped_up``: random negatives added because there were too few hard candidates (included in
    ``counts["random"]``). ``hard_scores``: retriever scores of the kept hard negatives;
    ``positive_scores``: each mined query's best positive score under the same retriever (the
    figure :func:`rerank_utils.tutorial.plots.mining_score_distributions` compares them).
    """
    counts: dict[str, int] = field(default_factory=dict)
    dropped_false_negative: int = 0
    dropped_by_filter: int = 0
    skipped_top: int = 0
    short_queries: list[str] = field(default_factory=list)
    hard_scores: list[float] = field(default_factory=list)
    positive_scores: list[float] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)
    topped_up: int = 0
    no_positive_queries: list[str] = field(default_factory=list)
    n_queries: int = 0
    num_negatives: int = 0
    strategy: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """A few lines: what was mined, what was dropped and which queries came up short."""
        per = ", ".join(f"{n} {s}" for s, n in self.counts.items() if n) or "none"
        lines = [
            f"{self.strategy}: {self.total} negatives for {self.n_queries} queries "
            f"({self.num_negatives} per query): {per}",
            f"dropped {self.dropped_false_negative} likely false negatives (margins), "
            f"{self.dropped_by_filter} by the cross-encoder filter; skipped {self.skipped_top} top ranks; "
            f"{self.topped_up} random top-ups",
        ]
        if self.short_queries:
            shown = ", ".join(self.short_queries[:10]) + (" ..." if len(self.short_queries) > 10 else "")
            lines.append(f"{len(self.short_queries)} queries got fewer than {self.num_negatives} negatives "
                         f"(corpus too small): {shown}")
        if self.no_positive_queries:
            lines.append(f"{len(self.no_positive_queries)} queries without a positive were not mined")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def row(self) -> dict:
        """One line of a comparison table (``compare_reports``)."""
        return {
            "negatives": self.total,
            **{f"from {s}": n for s, n in sorted(self.counts.items())},
            "dropped as likely false negatives": self.dropped_false_negative,
            "dropped by cross-encoder filter": self.dropped_by_filter,
            "random top-ups": self.topped_up,
            "short queries": len(self.short_queries),
            "median hard score": statistics.median(self.hard_scores) if self.hard_scores else None,
            "median positive score": statistics.median(self.positive_scores) if self.positive_scores else None,
        }


def compare_reports(reports: dict[str, "MiningReport"]):
    """A table (pandas DataFrame) with one row per mining run, e.g. per strategy (notebook 02)."""
    return pd.DataFrame({name: r.row() for name, r in reports.items()}).T.fillna(0)


@dataclass
class MiningResult:
    """``negatives[qid]``: doc ids in the order chosen (hard first, then random).

    ``strategy_of[(qid, doc_id)]`` says where each came from; ``scores[(qid, doc_id)]`` is the
    retriever's score of a hard negative; ``positive_score[qid]`` the query's best positive score under
    that retriever (used by the margins).
    """
    negatives: dict[str, list[str]]
    strategy_of: dict[tuple[str, str], str]
    report: MiningReport
    scores: dict[tuple[str, str], float] = field(default_factory=dict)
    positive_score: dict[str, float] = field(default_factory=dict)


def _is_dense(retriever: Any) -> bool:
    return hasattr(retriever, "encode_queries") and hasattr(retriever, "doc_embeddings")


def _is_bm25(retriever: Any) -> bool:
    return hasattr(retriever, "bm25") and hasattr(retriever, "lang")


def _get_retriever(ds: RetrievalDataset, config: MiningConfig, model: Any, retriever: Any) -> Any:
    source = config.source
    if retriever is not None:
        if not hasattr(retriever, "search"):
            raise TypeError(f"retriever must have a search(queries, top_k) method, got {type(retriever).__name__}")
        if (source == "dense" and _is_bm25(retriever)) or (source == "bm25" and _is_dense(retriever)):
            raise ValueError(f"the {source} strategy was asked for but a {type(retriever).__name__} was passed")
        return retriever
    if source == "bm25":
        return BM25Retriever(ds.corpus, lang=config.lang)

    if model is None:
        model = load_bi_encoder("default")
    return DenseRetriever(ds.corpus, model, backend=config.dense_backend)


def _search(retriever: Any, queries: dict[str, str], top_k: int, chunk_size: int) -> dict[str, dict[str, float]]:
    if _is_dense(retriever):
        return retriever.search(queries, top_k=top_k, chunk_size=chunk_size)
    return retriever.search(queries, top_k=top_k)


def _positive_scores(
    retriever: Any, ds: RetrievalDataset, qids: Sequence[str], run: Mapping[str, Mapping[str, float]], cache: dict
) -> dict[str, float]:
    """Best positive score per query under ``retriever`` (the score the margins compare with).

    Dense: query embedding . positive's embedding (cosine when normalised), exactly what ``search``
    computes. BM25: ``bm25s``' ``get_scores`` on the tokenised query (0 when no token is shared). Any
    other retriever: the positives' scores in its own list; a query whose positives are not in it gets
    no score and no margin.
    """
    texts = [ds.queries[q] for q in qids]
    if not (_is_dense(retriever) or _is_bm25(retriever)):
        found = {q: [run.get(q, {})[d] for d in ds.positives(q) if d in run.get(q, {})] for q in qids}
        return {q: float(max(f)) for q, f in found.items() if f}
    if "index" not in cache:
        cache["index"] = {d: i for i, d in enumerate(retriever.doc_ids)}
    index = cache["index"]
    rows = {q: [index[d] for d in ds.positives(q) if d in index] for q in qids}
    out: dict[str, float] = {}
    if _is_dense(retriever):
        for qid, q_emb in zip(qids, retriever.encode_queries(texts)):
            if rows[qid]:
                out[qid] = float(np.max(retriever.doc_embeddings[rows[qid]] @ q_emb))
        return out
    for qid, toks in zip(qids, tokenize(texts, lang=retriever.lang, stopwords=getattr(retriever, "stopwords", True))):
        if rows[qid]:
            scores = retriever.bm25.get_scores(list(toks)) if toks else np.zeros(len(index))
            out[qid] = float(np.max(np.asarray(scores)[rows[qid]]))
    return out


def _margin_threshold(pos: float | None, config: MiningConfig) -> float:
    """Candidates scoring above this are dropped as likely false negatives."""
    if pos is None:
        return math.inf
    thr = math.inf
    if config.relative_margin is not None:
        thr = min(thr, pos - float(config.relative_margin) * abs(pos))
    if config.absolute_margin is not None:
        thr = min(thr, pos - float(config.absolute_margin))
    return thr


def _sample_random(rng: random.Random, doc_ids: Sequence[str], blocked: set[str], n_blocked: int, need: int) -> list[str]:
    """``need`` distinct doc ids not in ``blocked`` (fewer if the corpus lacks them), without scanning
    the corpus when few are blocked (rejection sampling)."""
    n = len(doc_ids)
    available = n - n_blocked
    if need <= 0 or available <= 0:
        return []
    if need >= available or n_blocked * 2 > n:
        pool = [d for d in doc_ids if d not in blocked]
        return rng.sample(pool, min(need, len(pool)))
    out: list[str] = []
    seen = set(blocked)
    while len(out) < need:
        d = doc_ids[rng.randrange(n)]
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def _ce_scores(cross_encoder: Any, pairs: list[tuple[str, str]], batch_size: int = 32) -> list[float]:
    if not pairs:
        return []
    scores = cross_encoder.predict(pairs, batch_size=batch_size, show_progress_bar=False)
    return [float(s) for s in np.asarray(scores, dtype=np.float64).reshape(len(pairs), -1)[:, 0]]


def mine_negatives(
    ds: RetrievalDataset,
    config: MiningConfig | None = None,
    model: Any = None,
    retriever: Any = None,
    cross_encoder: Any = None,
    ce_threshold: float | None = None,
    chunk_size: int = 1024,
) -> MiningResult:
    """Mine ``config.num_negatives`` negatives per query of ``ds`` that has a positive.

    Args:
        ds: corpus, queries and qrels.
        config: a :class:`MiningConfig` (default: 4 dense hard negatives, relative margin 0.05).
        model: the bi-encoder for the dense retriever; loaded (``load_bi_encoder("default")``, offline)
            only when a dense retriever is needed and none is passed.
        retriever: a prebuilt ``DenseRetriever`` / ``BM25Retriever`` (or any object with
            ``search(queries, top_k)``) over ``ds.corpus``, to reuse its index.
        cross_encoder: optional model with ``predict(pairs, batch_size=..., show_progress_bar=False)``;
            hard candidates it scores above ``ce_threshold`` are dropped (counted in
            ``report.dropped_by_filter``). Candidates are scored lazily, only as many as needed.
        ce_threshold: default: per query, the lowest cross-encoder score of its positives.
        chunk_size: queries processed (retrieved, scored) at a time.

    Returns a :class:`MiningResult`; its ``report`` counts everything kept and dropped.
    """
    config = config if config is not None else MiningConfig()
    config.validate()
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    source, n_hard, N = config.source, config.n_hard, config.num_negatives

    doc_ids = list(ds.corpus)
    in_corpus = ds.corpus.keys()
    qids = [q for q in ds.queries if ds.positives(q)]
    report = MiningReport(
        counts={s: 0 for s in ((source,) if source else ()) + ("random",)},
        no_positive_queries=[q for q in ds.queries if not ds.positives(q)], n_queries=len(qids), num_negatives=N,
        strategy=config.strategy if config.strategy != "mixed" else f"mixed ({source} + random)",
    )

    # docs whose text equals a positive's text: never negatives of that query
    positive_texts = {ds.corpus[d].strip() for q in qids for d in ds.positives(q) if d in ds.corpus}
    same_text: dict[str, list[str]] = {}
    for d, text in ds.corpus.items():
        t = text.strip()
        if t in positive_texts:
            same_text.setdefault(t, []).append(d)

    def excluded_of(qid: str) -> set[str]:
        out = set()
        for d in ds.positives(qid):
            out.add(d)
            if d in ds.corpus:
                out.update(same_text.get(ds.corpus[d].strip(), ()))
        return out

    ret = _get_retriever(ds, config, model, retriever) if source else None
    cache: dict = {}
    negatives: dict[str, list[str]] = {}
    strategy_of: dict[tuple[str, str], str] = {}
    scores: dict[tuple[str, str], float] = {}
    positive_score: dict[str, float] = {}

    for start in range(0, len(qids), chunk_size):
        chunk = qids[start : start + chunk_size]
        excluded = {q: excluded_of(q) for q in chunk}
        blocked_extra: dict[str, set[str]] = {q: set() for q in chunk}  # skipped / dropped candidates
        hard: dict[str, list[tuple[str, float]]] = {q: [] for q in chunk}
        if source and n_hard > 0:
            run = _search(ret, {q: ds.queries[q] for q in chunk}, config.range_max, chunk_size)
            pos_scores = _positive_scores(ret, ds, chunk, run, cache)
            positive_score.update(pos_scores)
            pending: dict[str, list[tuple[str, float]]] = {}
            for q in chunk:
                cands = [(d, s) for d, s in run.get(q, {}).items() if d in in_corpus and d not in excluded[q]]
                skipped = cands[: config.skip_top]
                report.skipped_top += len(skipped)
                blocked_extra[q].update(d for d, _ in skipped)
                thr = _margin_threshold(pos_scores.get(q), config)
                kept = []
                for d, s in cands[config.skip_top :]:
                    if s > thr:
                        report.dropped_false_negative += 1
                        blocked_extra[q].add(d)
                    else:
                        kept.append((d, s))
                pending[q] = kept
            if cross_encoder is None:
                for q in chunk:
                    hard[q] = pending[q][:n_hard]
            else:
                thresholds: dict[str, float] = {}
                if ce_threshold is not None:
                    thresholds = {q: float(ce_threshold) for q in chunk}
                else:
                    owned = [(q, d) for q in chunk for d in ds.positives(q) if d in ds.corpus]
                    for (q, _), s in zip(owned, _ce_scores(cross_encoder, [(ds.queries[q], ds.corpus[d]) for q, d in owned])):
                        thresholds[q] = min(thresholds.get(q, math.inf), s)
                pointer = {q: 0 for q in chunk}
                while True:
                    batch: list[tuple[str, str, float]] = []
                    for q in chunk:
                        need = n_hard - len(hard[q])
                        take = pending[q][pointer[q] : pointer[q] + max(need, 0)]
                        pointer[q] += len(take)
                        batch += [(q, d, s) for d, s in take]
                    if not batch:
                        break
                    ce = _ce_scores(cross_encoder, [(ds.queries[q], ds.corpus[d]) for q, d, _ in batch])
                    for (q, d, s), c in zip(batch, ce):
                        if c > thresholds.get(q, math.inf):
                            report.dropped_by_filter += 1
                            blocked_extra[q].add(d)
                        else:
                            hard[q].append((d, s))
        elif source:
            positive_score.update(_positive_scores(ret, ds, chunk, {}, cache))

        for q in chunk:
            chosen = [d for d, _ in hard[q]]
            for d, s in hard[q]:
                strategy_of[(q, d)] = source
                scores[(q, d)] = float(s)
                report.hard_scores.append(float(s))
            if source:
                report.counts[source] += len(chosen)
            blocked = excluded[q] | blocked_extra[q] | set(chosen)
            rng = random.Random(f"{config.seed}\x00{q}")
            extra = _sample_random(rng, doc_ids, blocked, len(blocked & in_corpus), N - len(chosen))
            for d in extra:
                strategy_of[(q, d)] = "random"
            report.counts["random"] += len(extra)
            report.topped_up += max(0, len(extra) - (N - n_hard))
            chosen += extra
            negatives[q] = chosen
            if len(chosen) < N:
                report.short_queries.append(q)
            if q in positive_score:
                report.positive_scores.append(positive_score[q])
            if chosen and len(report.examples) < _MAX_EXAMPLES:
                d = chosen[0]
                report.examples.append({"query": ds.queries[q], "positive": ds.corpus[ds.positives(q)[0]],
                                        "negative": ds.corpus[d], "strategy": strategy_of[(q, d)], "score": scores.get((q, d))})
    return MiningResult(negatives, strategy_of, report, scores, positive_score)


def negatives_to_triples(ds: RetrievalDataset, result: MiningResult) -> list[dict]:
    """The guide's triples ``{query, passage, score}``: positives 1.0 (or their grade in (0, 1]),
    mined negatives 0.0 (:func:`rerank_utils.data.convert.dataset_to_triples`)."""
    return dataset_to_triples(ds, negatives=result.negatives)
