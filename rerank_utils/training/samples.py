"""What the trainer reads: the guide's ``{query, passage, score}`` triples and mined negatives turned into
sentence-transformers training rows (pointwise pairs, or one row per query for the listwise losses), and the
validation samples of the reranking evaluator. Introduced in notebook ``03_fine_tuning``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any, Sequence

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.retrieval.queries import rank
from rerank_utils.training.arguments import LIST_LOSSES, LOSSES


# ----------------------------------------------------------------------------------------------- data
def training_rows(ds: RetrievalDataset, negatives: dict[str, list[str]], loss: str = "bce") -> list[dict]:
    """Rows in the shape each loss reads (columns in order; the label column is ``label``/``labels``).

    * ``bce``: ``{query, passage, label}``, one per (query, positive) and (query, negative).
    * ``mnrl``: ``{query, positive, negative_1, …, negative_N}``, one per (query, positive); N is the
      number of negatives most queries have; a query with fewer cannot fill a row and is skipped, with a
      warning that counts it (nothing is dropped silently).
    * ``lambda`` / ``listnet`` / ``softmax``: ``{query, docs, labels}``, one list per query (positives then
      negatives).
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    rows: list[dict] = []
    qids = [q for q in ds.queries if ds.positives(q)]
    if loss == "bce":
        for q in qids:
            rows += [{"query": ds.queries[q], "passage": ds.corpus[d], "label": 1.0} for d in ds.positives(q)]
            rows += [{"query": ds.queries[q], "passage": ds.corpus[d], "label": 0.0} for d in negatives.get(q, [])]
    elif loss == "mnrl":
        counts = Counter(len(negatives.get(q, [])) for q in qids)
        n = max(counts, key=lambda k: (counts[k], k)) if counts else 0
        full = [q for q in qids if len(negatives.get(q, [])) >= n]
        if len(full) < len(qids):
            warnings.warn(f"training_rows(loss='mnrl'): {len(qids) - len(full)} queries skipped (fewer than {n} negatives)",
                          UserWarning, stacklevel=2)
        for q in full:
            for p in ds.positives(q):
                row = {"query": ds.queries[q], "positive": ds.corpus[p]}
                row.update({f"negative_{i + 1}": ds.corpus[d] for i, d in enumerate(negatives.get(q, [])[:n])})
                rows.append(row)
    else:
        for q in qids:
            pos, neg = ds.positives(q), negatives.get(q, [])
            rows.append({"query": ds.queries[q], "docs": [ds.corpus[d] for d in pos + neg],
                         "labels": [1.0] * len(pos) + [0.0] * len(neg)})
    return rows


def reranking_samples(ds: RetrievalDataset, first_stage: dict[str, dict], top_k: int = 20) -> list[dict]:
    """Validation samples for ``CrossEncoderRerankingEvaluator``: each query's first-stage top-``top_k``
    as ``documents`` and its positives' texts as ``positive`` (a positive the first stage missed is NOT
    added, so the score is the realistic one of reranking that first stage)."""
    return [
        {"query": ds.queries[q], "positive": [ds.corpus[d] for d in ds.positives(q)],
         "documents": [ds.corpus[d] for d in rank(first_stage[q])[:top_k]]}
        for q in ds.queries if q in first_stage and ds.positives(q)
    ]


def _pairs_in(rows: Sequence[dict], loss: str) -> int:
    if loss == "bce":
        return len(rows)
    if loss == "mnrl":
        return sum(len(r) - 1 for r in rows)
    if loss not in LIST_LOSSES:
        raise ValueError(f"unknown loss {loss!r}")
    return sum(len(r["docs"]) for r in rows)


# ------------------------------------------------------------------------------- the guide's facade
def _as_triple(sample: Any) -> Any:
    """A guide record (dict with query/passage/score) or a LlamaIndex-style sample (query, context, score:
    an object or a dict) as a plain triple dict; anything else is returned as is for the validator."""
    if isinstance(sample, dict):
        if "context" in sample and "passage" not in sample:
            rest = {k: v for k, v in sample.items() if k != "context"}
            return {**rest, "passage": sample["context"]}
        return sample
    if all(hasattr(sample, a) for a in ("query", "context", "score")):
        return {"query": sample.query, "passage": sample.context, "score": sample.score}
    return sample


def samples_from_triples(records: Sequence[dict]) -> list[dict]:
    """Validation samples for the reranking evaluator from triples: each query's passages as
    ``documents`` and those with score >= 0.5 as ``positive`` (queries without a positive are skipped)."""
    grouped: dict[str, dict[str, list[str]]] = {}
    for r in records:
        g = grouped.setdefault(r["query"], {"positive": [], "documents": []})
        g["documents"].append(r["passage"])
        if r["score"] >= 0.5:
            g["positive"].append(r["passage"])
    return [{"query": q, **g} for q, g in grouped.items() if g["positive"]]
