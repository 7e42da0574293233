"""Conversions between the formats: triples <-> grouped, and either <-> a
:class:`~rerank_utils.data.records.RetrievalDataset` (ids from the text, score-0 pairs kept as judged negatives).
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Iterator, Mapping, Sequence

from rerank_utils.data.records import POSITIVE_THRESHOLD, RetrievalDataset, _preview


def triples_to_grouped(records: Iterable[dict]) -> list[dict]:
    """Group triples by query (first-seen order): score >= 0.5 goes to ``pos``, below to ``neg``.

    Extra fields of the triples are not carried over (grouped records have no per-passage fields).
    """
    groups: dict[str, dict] = {}
    for record in records:
        query = record["query"].strip()
        group = groups.setdefault(query, {"query": query, "pos": [], "neg": []})
        side = "pos" if float(record["score"]) >= POSITIVE_THRESHOLD else "neg"
        group[side].append(record["passage"].strip())
    return list(groups.values())


def grouped_to_triples(records: Iterable[dict]) -> list[dict]:
    """One triple per passage: ``pos`` -> score 1.0, ``neg`` -> score 0.0, in record order."""
    triples = []
    for record in records:
        query = record["query"].strip()
        triples += [{"query": query, "passage": p.strip(), "score": 1.0} for p in record["pos"]]
        triples += [{"query": query, "passage": p.strip(), "score": 0.0} for p in record.get("neg", [])]
    return triples


def _text_id(prefix: str, text: str, table: dict[str, str]) -> str:
    """A stable id from the text (``prefix-`` + 12 hex digits of its SHA-1), registered in ``table``."""
    text_id = f"{prefix}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:12]}"
    if table.setdefault(text_id, text) != text:
        raise ValueError(
            f"two different texts hash to the id {text_id!r}: {_preview(table[text_id])} and {_preview(text)}"
        )
    return text_id


def triples_to_dataset(records: Iterable[dict], name: str = "") -> RetrievalDataset:
    """A dataset from triples, with ids derived from the text (``q-``/``d-`` + SHA-1[:12]), so the same
    text always gets the same id. ``qrels`` hold every passage seen with a query, with its score
    (negatives stay in as 0.0); the first record of a repeated pair wins."""
    corpus: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, float]] = {}
    for record in records:
        qid = _text_id("q", record["query"].strip(), queries)
        doc_id = _text_id("d", record["passage"].strip(), corpus)
        qrels.setdefault(qid, {}).setdefault(doc_id, float(record["score"]))
    return RetrievalDataset(corpus=corpus, queries=queries, qrels=qrels, name=name)


def _labelled(
    ds: RetrievalDataset, negatives: Mapping[str, Sequence[str]] | None
) -> Iterator[tuple[str, list[tuple[str, float]], list[str]]]:
    """Per query of ``ds``: its text, its positives as (text, grade) and its negatives' texts.

    Negatives are doc ids (repeats skipped); ids for queries not in ``ds`` are ignored, so negatives
    mined for a whole dataset work on its splits. A negative that is also a positive is an error.
    """
    negatives = negatives or {}

    def text_of(doc_id: str, qid: str) -> str:
        if doc_id not in ds.corpus:
            raise KeyError(f"doc id {doc_id!r} (for query {qid!r}) is not in the corpus")
        return ds.corpus[doc_id].strip()

    for qid, query in ds.queries.items():
        grades = ds.qrels.get(qid, {})
        positive_ids = [doc_id for doc_id, grade in grades.items() if grade > 0]
        positives = [(text_of(doc_id, qid), float(grades[doc_id])) for doc_id in positive_ids]
        negative_texts = []
        for doc_id in dict.fromkeys(negatives.get(qid, ())):
            if doc_id in positive_ids:
                raise ValueError(
                    f"doc {doc_id!r} is a positive of query {qid!r} and also among its negatives; "
                    "remove it from the negatives"
                )
            negative_texts.append(text_of(doc_id, qid))
        yield query.strip(), positives, negative_texts


def dataset_to_triples(ds: RetrievalDataset, negatives: Mapping[str, Sequence[str]] | None = None) -> list[dict]:
    """Triples from a dataset: each positive (qrels grade > 0) with score 1.0, or its grade when that is
    in (0, 1]; then each negative doc id in ``negatives[qid]`` with score 0.0. Without ``negatives``,
    only positives (qrels grades of 0 are not turned into negatives)."""
    triples = []
    for query, positives, negative_texts in _labelled(ds, negatives):
        triples += [{"query": query, "passage": text, "score": min(grade, 1.0)} for text, grade in positives]
        triples += [{"query": query, "passage": text, "score": 0.0} for text in negative_texts]
    return triples


def dataset_to_grouped(ds: RetrievalDataset, negatives: Mapping[str, Sequence[str]] | None = None) -> list[dict]:
    """Grouped records from a dataset: ``pos`` = texts of the positives (grade > 0), ``neg`` = texts of
    ``negatives[qid]``. Queries with neither are left out."""
    return [
        {"query": query, "pos": [text for text, _ in positives], "neg": negative_texts}
        for query, positives, negative_texts in _labelled(ds, negatives)
        if positives or negative_texts
    ]
