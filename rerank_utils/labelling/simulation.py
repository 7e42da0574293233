"""Labelling simulated with the qrels as the judge: how many labels a team needs, by which first stage they are
proposed (:func:`labelling_comparison`, :func:`label_curve`). Notebook ``13_labelling_your_own_data``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from rerank_utils.data.records import POSITIVE_THRESHOLD, RetrievalDataset
from rerank_utils.data.triples import read_triples
from rerank_utils.labelling.candidates import Candidate, propose_candidates
from rerank_utils.labelling.labeller import Labeller
from rerank_utils.labelling.store import delete_labels


# ------------------------------------------------------------------------------------------ no human at hand
def qrels_judge(ds: RetrievalDataset) -> Callable[[Candidate], int]:
    """A stand-in for a human where the answers are already known: 1 when ``ds.qrels`` holds the
    candidate's (query id, doc id) with a grade > 0, else 0. For demonstrations and tests; a real team
    has no qrels, which is why it labels."""
    def judge(cand: Candidate) -> int:
        return int(ds.qrels.get(cand.query_id, {}).get(cand.doc_id, 0) > 0)

    return judge


def auto_label(labeller: Labeller, judge: Callable[[Candidate], Any], n: int | None = None) -> dict[str, int]:
    """Let ``judge(candidate)`` decide the next ``n`` candidates (all when ``None``): a value is
    recorded with :meth:`~rerank_utils.labelling.labeller.Labeller.label`, ``None`` is a skip. Returns ``{"labelled": ..., "skipped": ...}``."""
    counts = {"labelled": 0, "skipped": 0}
    while n is None or counts["labelled"] + counts["skipped"] < n:
        cand = labeller.current
        if cand is None:
            break
        value = judge(cand)
        if value is None:
            labeller.skip(cand)
            counts["skipped"] += 1
        else:
            labeller.label(cand, value)
            counts["labelled"] += 1
    return counts


def simulate_labelling(
    candidates: Iterable[Candidate], judge: Callable[[Candidate], Any], path: str | os.PathLike, budget: int | None
) -> Labeller:
    """A fresh labels file at ``path`` (an old one and its skips are deleted), ``budget`` decisions by
    ``judge`` (:func:`auto_label`), without fsync (a simulation needs no power-cut safety)."""
    delete_labels(path)
    labeller = Labeller(candidates, path, fsync=False)
    auto_label(labeller, judge, budget)
    return labeller


FIRST_STAGE_NAMES = {"bm25": "BM25", "dense": "bi-encoder"}


def labelling_comparison(
    ds: RetrievalDataset,
    first_stages: Sequence[Any],
    folder: str | os.PathLike,
    budget: int,
    top_k: int = 10,
    model: Any = "default",
    device: str | None = None,
    judge: Callable[[Candidate], Any] | None = None,
    candidates: Mapping[Any, list[Candidate]] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict]]]:
    """The same labelling budget spent on each first stage's candidates, hardest first, by ``judge``
    (default :func:`qrels_judge` ``(ds)``, the known answers standing in for a person).

    Returns ``(table, curves)``: per first stage, a row (pairs labelled, relevant, not relevant,
    negatives per positive, queries with a relevant passage, the share of the known answers found) and
    its :func:`label_curve`. Files go to ``folder/compare_<first stage>.jsonl``. ``candidates`` maps a
    first stage to candidates already proposed for ``ds`` (they are reused instead of retrieved again).
    """
    judge = judge or qrels_judge(ds)
    known = sum(len(ds.positives(q)) for q in ds.queries)
    table, curves = {}, {}
    for fs in first_stages:
        name = FIRST_STAGE_NAMES.get(fs, str(fs)) if isinstance(fs, str) else type(fs).__name__
        cands = (candidates or {}).get(fs) if isinstance(fs, str) else None
        if cands is None:
            cands = propose_candidates(ds.queries, ds.corpus, fs, top_k, model=model, device=device)
        lab = simulate_labelling(cands, judge, Path(folder) / f"compare_{name.replace(' ', '_')}.jsonl", budget)
        p = lab.progress()
        table[name] = {
            "pairs labelled": p["labelled"],
            "relevant": p["positives"],
            "not relevant": p["negatives"],
            "negatives per positive": p["negatives_per_positive"],
            "queries with a relevant passage": p["queries_with_positive"],
            "share of queries": p["queries_with_positive"] / max(1, len(ds.queries)),
            "known answers found": p["positives"] / max(1, known),
        }
        curves[name] = label_curve(lab.path, n_queries=len(ds.queries))
    return table, curves


def label_curve(path: str | os.PathLike, n_queries: int | None = None) -> list[dict[str, Any]]:
    """How a labels file grew, label by label in file order: after each label, ``labels``,
    ``positives``, ``negatives``, ``queries_with_positive`` (and its ``share`` of ``n_queries`` when
    given) and ``negatives_per_positive`` (``None`` before the first positive)."""
    records, _ = read_triples(path, require_positive=False)
    rows, pos, neg, with_pos = [], 0, 0, set()
    for i, rec in enumerate(records, 1):
        if rec["score"] >= POSITIVE_THRESHOLD:
            pos += 1
            with_pos.add(rec["query"])
        else:
            neg += 1
        row = {"labels": i, "positives": pos, "negatives": neg, "queries_with_positive": len(with_pos),
               "negatives_per_positive": neg / pos if pos else None}
        if n_queries:
            row["share_of_queries_with_positive"] = len(with_pos) / n_queries
        rows.append(row)
    return rows
