"""The default data: the packaged Zaragoza construction FAQ (``zaragoza-construction-faq``, 503 Q&As, CC BY 4.0) as a
:class:`~rerank_utils.data.records.RetrievalDataset`, in English or Swedish.
"""

from __future__ import annotations

from collections import defaultdict

import zaragoza_construction_faq as zcf

from rerank_utils.data.records import RetrievalDataset

FAQ_ATTRIBUTION = (
    "Swedish Construction FAQ by Zaragoza AB, CC BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/), DOI 10.5281/zenodo.19630803, "
    "via the PyPI package zaragoza-construction-faq."
)


def load_faq(lang: str = "en") -> RetrievalDataset:
    """The packaged Swedish construction FAQ as a retrieval dataset (the offline default).

    corpus = the 503 answers (doc id = the FAQ id, e.g. ``bygglov-001``); queries = the questions;
    qrels = each question's own answer. A few questions occur twice with different answers: each such
    text becomes ONE query (id of its first occurrence, prefixed ``q-``) with every answer it has as
    relevant, so no query appears twice and no correct answer is counted as a miss.
    ``query_meta[qid]`` holds ``category``, ``faq_ids`` and ``n_answers``; ``doc_meta[doc_id]`` holds
    ``category``, ``sources``, ``question`` and ``related_service``.

    Licence: CC BY 4.0, attribution required: see :data:`FAQ_ATTRIBUTION`.
    """
    if lang not in ("en", "sv"):
        raise ValueError(f"lang must be 'en' or 'sv', got {lang!r}")

    records = zcf.load(lang=lang)
    corpus: dict[str, str] = {}
    doc_meta: dict[str, dict] = {}
    by_question: dict[str, list[dict]] = defaultdict(list)
    for rec in records:
        corpus[rec["id"]] = rec["a"].strip()
        doc_meta[rec["id"]] = {
            "category": rec["category"],
            "sources": list(rec.get("sources") or []),
            "question": rec["q"].strip(),
            "related_service": rec.get("related_service"),
        }
        by_question[rec["q"].strip()].append(rec)

    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, float]] = {}
    query_meta: dict[str, dict] = {}
    for text, recs in by_question.items():  # dicts keep first-occurrence order
        qid = f"q-{recs[0]['id']}"
        queries[qid] = text
        qrels[qid] = {r["id"]: 1.0 for r in recs}
        query_meta[qid] = {
            "category": recs[0]["category"],
            "faq_ids": [r["id"] for r in recs],
            "n_answers": len(recs),
        }
    return RetrievalDataset(corpus, queries, qrels, doc_meta, query_meta, name=f"faq-{lang}")
