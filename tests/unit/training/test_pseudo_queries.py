"""Inverse-cloze pseudo-queries cut from a corpus (rerank_utils.training.pseudo_queries)."""

from __future__ import annotations

import pytest

from rerank_utils.training.pseudo_queries import (
    inverse_cloze,
    sentences,
    without_sources,
)

CORPUS = {
    "a": "A permit is needed for an extension. The fee depends on the municipal tariff. Apply at the town hall.",
    "b": "Short answer only.",  # one sentence: no pseudo-query
    "c": "Roofs need drainage. Gutters must be cleaned twice a year by the owner.",
}


def test_sentences_split_after_end_punctuation_before_a_capital():
    assert sentences(CORPUS["a"]) == ["A permit is needed for an extension.", "The fee depends on the municipal tariff.", "Apply at the town hall."]
    assert sentences("It costs approx. ten weeks. Then more.") == ["It costs approx. ten weeks.", "Then more."]  # no capital after "approx."


def test_each_multi_sentence_passage_gives_one_query_and_its_passage_without_it():
    ds = inverse_cloze(CORPUS, seed=1, keep_rate=0.0)
    assert set(ds.queries) == {"ict:a", "ict:c"}  # b has one sentence
    for qid, query in ds.queries.items():
        (pid,) = ds.qrels[qid]
        source = ds.query_meta[qid]["source"]
        assert pid == f"{source}#ict" and query in CORPUS[source] and query not in ds.corpus[pid]
        assert len(query.split()) >= 4 and sorted(sentences(ds.corpus[pid]) + [query]) == sorted(sentences(CORPUS[source]))
    assert {k: ds.corpus[k] for k in CORPUS} == CORPUS  # the real passages stay as they are
    assert inverse_cloze(CORPUS, seed=1, keep_rate=0.0).queries == ds.queries  # seeded
    kept = inverse_cloze(CORPUS, seed=1, keep_rate=1.0)
    assert all(kept.queries[q] in kept.corpus[next(iter(kept.qrels[q]))] for q in kept.queries)
    assert set(inverse_cloze(CORPUS, exclude={"a"}).queries) == {"ict:c"}


def test_a_source_passage_is_never_a_negative_and_bad_input_is_refused():
    ds = inverse_cloze(CORPUS, seed=1)
    assert without_sources(ds, {"ict:a": ["a", "c", "b"], "ict:c": ["c"]}) == {"ict:a": ["c", "b"], "ict:c": []}
    with pytest.raises(ValueError, match="keep_rate must be in"):
        inverse_cloze(CORPUS, keep_rate=2)
    with pytest.raises(ValueError, match="no passage of the 1 has two sentences"):
        inverse_cloze({"b": "Short answer only."})
