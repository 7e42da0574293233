"""The QASPER case study's helpers: the FAQ as QASPER papers through the real QASPER loader and builders,
paper splits, first stages restricted to a paper, and triples as training rows."""

from __future__ import annotations

import pytest

from rerank_utils.data.faq import load_faq
from rerank_utils.data.qasper import (
    load_qasper_papers,
    qasper_to_dataset,
    qasper_to_triples,
)
from rerank_utils.data.records import RetrievalDataset
from rerank_utils.retrieval.bm25 import BM25Retriever
from rerank_utils.tutorial.case_study import (
    faq_as_qasper_papers,
    rows_from_triples,
    sample_papers,
    split_papers,
    within_group_runs,
    within_paper_first_stages,
    write_qasper_jsonl,
)


@pytest.fixture(scope="module")
def papers():
    return faq_as_qasper_papers()


def test_the_faq_as_qasper_keeps_every_question_and_answer(papers):
    faq = load_faq("en")
    assert sum(len(p["qas"]["question"]) for p in papers) == len(faq.queries)
    assert sum(len(p["full_text"]["paragraphs"][0]) for p in papers) == len(faq.corpus)
    assert len({p["id"] for p in papers}) == len(papers) == len({m["category"] for m in faq.doc_meta.values()})
    ds = qasper_to_dataset(papers)  # the real builder reads it: every question keeps its answers as evidence
    assert len(ds.queries) == len(faq.queries)
    q = "q-bygglov-001"
    assert {ds.corpus[d] for d in ds.qrels[q]} == {faq.corpus[d] for d in faq.qrels[q]}


def test_split_write_and_load_through_the_qasper_loader(papers, tmp_path):
    splits = split_papers(papers, n_test=5, n_val=3, seed=1)
    ids = [{p["id"] for p in splits[s]} for s in ("train", "val", "test")]
    assert [len(x) for x in ids] == [len(papers) - 8, 3, 5] and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert split_papers(papers, n_test=5, n_val=3, seed=1) == splits  # seeded
    folder = write_qasper_jsonl(splits, tmp_path / "fixture")
    assert sorted(f.name for f in folder.iterdir()) == ["test.jsonl", "train.jsonl", "validation.jsonl"]
    loaded = load_qasper_papers("validation", source=folder, cache_dir=tmp_path / "cache")
    assert [p["id"] for p in loaded] == [p["id"] for p in splits["val"]]
    records, stats = qasper_to_triples(loaded, negatives_per_positive=2)
    assert stats["n_with_evidence"] == stats["n_questions"] and stats["n_negatives"] > 0
    with pytest.raises(ValueError, match="n_test=0"):
        split_papers(papers, n_test=0)
    with pytest.raises(ValueError, match="must leave training papers"):
        split_papers(papers[:3], n_test=2, n_val=1)


def test_sample_papers_keeps_order_and_all_when_asked_for_more(papers):
    five = sample_papers(papers, 5, seed=3)
    assert len(five) == 5 and five == [p for p in papers if p in five] and five == sample_papers(papers, 5, seed=3)
    assert sample_papers(papers, None) == papers and sample_papers(papers, 10_000) == papers
    with pytest.raises(ValueError, match="n=0"):
        sample_papers(papers, 0)


def test_within_group_runs_only_returns_the_querys_own_paper(papers):
    ds = qasper_to_dataset(papers[:4])
    run = within_group_runs(ds, lambda corpus: BM25Retriever(corpus), top_k=5)
    assert set(run) == set(ds.queries)
    for q, hits in run.items():
        paper = ds.query_meta[q]["paper_id"]
        assert hits and len(hits) <= 5 and all(ds.doc_meta[d]["paper_id"] == paper for d in hits)
    bad = RetrievalDataset({"d": "text"}, {"q": "text"}, {"q": {"d": 1}}, {"d": {}}, {"q": {"paper_id": "p"}})
    with pytest.raises(KeyError, match="document 'd' has no doc_meta\\['paper_id'\\]"):
        within_group_runs(bad, lambda c: BM25Retriever(c))


def test_rows_from_triples_for_pointwise_and_listwise_losses():
    triples = [{"query": "a", "passage": "n1", "score": 0}, {"query": "a", "passage": "p", "score": 1},
               {"query": "b", "passage": "n2", "score": 0}]
    assert rows_from_triples(triples) == [{"query": "a", "passage": "n1", "label": 0.0}, {"query": "a", "passage": "p", "label": 1.0},
                                          {"query": "b", "passage": "n2", "label": 0.0}]
    with pytest.warns(UserWarning, match="1 queries skipped"):
        rows = rows_from_triples(triples, loss="softmax")
    assert rows == [{"query": "a", "docs": ["p", "n1"], "labels": [1.0, 0.0]}]  # positives first; b had none
    with pytest.raises(ValueError, match="record 0 lacks \\['score'\\]"):
        rows_from_triples([{"query": "a", "passage": "p"}])
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        rows_from_triples(triples, loss="hinge")
    with pytest.raises(ValueError, match="'mnrl' needs"):
        rows_from_triples(triples, loss="mnrl")


def test_within_paper_first_stages_and_a_query_without_its_paper(papers, tiny_bert_dir):
    from rerank_utils.models.loading import load_bi_encoder

    ds = qasper_to_dataset(papers[:3])
    runs = within_paper_first_stages(ds, load_bi_encoder(str(tiny_bert_dir), device="cpu"), top_k=3)
    assert set(runs) == {"BM25", "bi-encoder"} and runs["BM25"] == within_group_runs(ds, lambda c: BM25Retriever(c), top_k=3)
    for run in runs.values():
        assert all(ds.doc_meta[d]["paper_id"] == ds.query_meta[q]["paper_id"] for q, hits in run.items() for d in hits)
    bad = RetrievalDataset({"d": "text"}, {"q": "text"}, {"q": {"d": 1}}, {"d": {"paper_id": "p"}}, {"q": {}})
    with pytest.raises(KeyError, match="query 'q' has no query_meta\\['paper_id'\\]"):
        within_group_runs(bad, lambda c: BM25Retriever(c))


def test_recipe_start_model_is_loaded_for_both_architectures(tiny_bert_dir):
    from rerank_utils.models.bridge import is_bridge
    from rerank_utils.training.arguments import TrainingConfig
    from rerank_utils.training.recipes import Recipe

    standard = Recipe("s", training=TrainingConfig(max_length=48)).start_model(str(tiny_bert_dir), device="cpu")
    assert not is_bridge(standard) and standard.max_length == 48 and standard.predict([("q", "d")]).shape == (1,)
    bridge = Recipe("b", training=TrainingConfig(max_length=48), architecture="bridge").start_model(str(tiny_bert_dir), device="cpu")
    assert is_bridge(bridge) and bridge.predict([("q", "d")]).shape == (1,)
