"""The packaged Swedish construction FAQ (PyPI zaragoza-construction-faq, CC BY 4.0) as the offline
default dataset."""

from __future__ import annotations

from collections import Counter

import pytest

from rerank_utils.data.faq import FAQ_ATTRIBUTION, load_faq
from rerank_utils.data.sources import build_dataset

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def faq_en():
    return load_faq("en")


def test_faq_en_sizes(faq_en):
    assert len(faq_en.corpus) == 503
    assert len(faq_en.queries) == 497
    assert len(set(faq_en.queries.values())) == 497  # no question text twice
    assert faq_en.name == "faq-en"


def test_faq_every_query_has_a_positive_and_every_doc_is_one(faq_en):
    assert all(faq_en.positives(q) for q in faq_en.queries)
    assert all(set(docs) <= set(faq_en.corpus) for docs in faq_en.qrels.values())
    positive_docs = [d for q in faq_en.queries for d in faq_en.positives(q)]
    assert Counter(positive_docs) == Counter(list(faq_en.corpus))  # each answer is exactly one query's positive


def test_faq_repeated_questions_merged(faq_en):
    merged = {q: docs for q, docs in faq_en.qrels.items() if len(docs) > 1}
    assert len(merged) == 6
    for qid, docs in merged.items():
        assert len(docs) == 2
        assert faq_en.query_meta[qid]["n_answers"] == 2
        assert faq_en.query_meta[qid]["faq_ids"] == list(docs)
        assert qid == f"q-{faq_en.query_meta[qid]['faq_ids'][0]}"
        assert {faq_en.doc_meta[d]["question"] for d in docs} == {faq_en.queries[qid]}


def test_faq_metadata_kept(faq_en):
    for doc_id, meta in faq_en.doc_meta.items():
        assert meta["category"] and isinstance(meta["category"], str)
        assert isinstance(meta["sources"], list)
        assert meta["question"]
    assert sum(bool(m["sources"]) for m in faq_en.doc_meta.values()) > 400
    assert all(m["category"] for m in faq_en.query_meta.values())
    assert "Zaragoza AB" in FAQ_ATTRIBUTION and "CC BY 4.0" in FAQ_ATTRIBUTION


def test_faq_sv():
    sv = load_faq("sv")
    assert len(sv.corpus) == 503
    assert 490 <= len(sv.queries) <= 503
    assert all(sv.positives(q) for q in sv.queries)
    assert Counter(d for q in sv.queries for d in sv.positives(q)) == Counter(list(sv.corpus))
    assert sv.name == "faq-sv"
    assert set(sv.corpus) == set(load_faq("en").corpus)  # same ids in both languages


def test_faq_bad_language():
    with pytest.raises(ValueError):
        load_faq("de")


def test_build_dataset_faq():
    assert len(build_dataset("faq").queries) == 497
    assert build_dataset("faq-sv").name == "faq-sv"
