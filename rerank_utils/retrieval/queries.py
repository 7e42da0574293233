"""What every first stage takes and returns: queries as a dict or a list, ``top_k`` checked, a run ranked
``{doc id: score}`` (score descending, ties by doc id descending, trec_eval's rule), and
:func:`first_stage_run` over a dataset's queries. Introduced in notebook ``00_concepts``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np

from rerank_utils.data.records import RetrievalDataset

RunDict = dict[str, dict[str, float]]
Queries = Union[Mapping[str, str], Sequence[str]]
Run = Union[Sequence[str], Mapping[str, float]]  # a ranked list of doc ids, or doc id -> score


def _as_query_dict(queries: Queries) -> dict[str, str]:
    """A dict query id -> text; a list gets the ids "0", "1", ..."""
    if isinstance(queries, Mapping):
        return dict(queries)
    if isinstance(queries, str):
        raise TypeError("queries must be a dict qid -> text or a list of texts, not a single string")
    return {str(i): q for i, q in enumerate(queries)}


def _check_top_k(top_k: Any, name: str = "top_k") -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"{name} must be a positive int, got {top_k!r}")


def _ordered(doc_ids: Sequence[str], scores: Sequence[float]) -> dict[str, float]:
    """doc id -> score as a dict in ranked order: score descending, ties by doc id descending."""
    pairs = sorted(zip(scores, doc_ids), reverse=True)
    return {d: float(s) for s, d in pairs}


def first_stage_run(retriever: Any, ds: RetrievalDataset, top_k: int = 100) -> RunDict:
    """Retrieve the top ``top_k`` candidates for every query of ``ds`` with a :class:`~rerank_utils.retrieval.bm25.BM25Retriever`,
    a :class:`~rerank_utils.retrieval.dense.DenseRetriever` or anything with their ``search``: ``retriever.search(ds.queries, top_k)``."""
    return retriever.search(ds.queries, top_k=top_k)


def rank(run: Run) -> list[str]:
    """The ranked list of doc ids of a one-query run.

    A list (or tuple) is returned as a new list in its own order, after checking it has no duplicate.
    A dict ``doc id -> score`` is sorted by score descending, ties broken by doc id in DESCENDING
    string order (trec_eval's rule), e.g. ``{"a": 1, "b": 1, "c": 2}`` -> ``["c", "b", "a"]``.

    Raises ``ValueError`` for a duplicate doc id in a list or a NaN score in a dict, and
    ``TypeError`` for anything else (a bare string is not a ranking).
    """
    if isinstance(run, Mapping):
        for doc_id, score in run.items():
            if score != score:  # NaN (also numpy NaN scalars)
                raise ValueError(f"NaN score for doc id {doc_id!r} in the run")
        # sort by (score, doc id) descending: score descending, ties by doc id descending
        return [doc_id for doc_id, _ in sorted(run.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]
    if isinstance(run, (str, bytes)) or not isinstance(run, Iterable):
        raise TypeError(
            f"a run must be a ranked list of doc ids or a dict doc id -> score, got {type(run).__name__}"
        )
    ranking = list(run)
    seen: set = set()
    for doc_id in ranking:
        if doc_id in seen:
            raise ValueError(f"duplicate doc id {doc_id!r} in the ranked list")
        seen.add(doc_id)
    return ranking
