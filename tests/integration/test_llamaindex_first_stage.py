"""LlamaIndex's VectorStoreIndex retriever on the packaged model agrees with the package's DenseRetriever."""

from __future__ import annotations

import pytest

from rerank_utils.data.faq import load_faq
from rerank_utils.evaluation.metrics import evaluate_run, run_agreement
from rerank_utils.integrations.llamaindex import build_vector_index, local_embedding, retrieve_run
from rerank_utils.models.loading import load_bi_encoder
from rerank_utils.paths import ENV_EMBEDDING_CACHE
from rerank_utils.retrieval.dense import DenseRetriever

pytestmark = pytest.mark.integration


def test_llamaindex_retriever_matches_dense_retriever():
    full = load_faq("en")
    ids = list(full.corpus)[:60]
    qids = [q for q in full.queries if set(full.positives(q)) <= set(ids)][:20]
    ds = full.subset(qids)
    ds.corpus = {d: full.corpus[d] for d in ids}
    li = retrieve_run(build_vector_index(ds), ds.queries, top_k=10)
    ours = DenseRetriever(ds.corpus, load_bi_encoder()).search(ds.queries, top_k=10)
    assert run_agreement(li, ours, k=10) == 1.0
    for q in ds.queries:  # same scores, not only the same order
        assert li[q] == pytest.approx(ours[q], abs=1e-4)
    a = evaluate_run(li, ds.qrels, ["ndcg@10"]).aggregate["ndcg@10"]
    b = evaluate_run(ours, ds.qrels, ["ndcg@10"]).aggregate["ndcg@10"]
    assert a == pytest.approx(b) and a > 0.6


def test_llamaindex_index_embeddings_are_computed_once_with_a_cache_and_equal_to_the_bit(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_EMBEDDING_CACHE, raising=False)
    full = load_faq("en")
    ds = full.subset(list(full.queries)[:10])
    ds.corpus = {d: full.corpus[d] for d in list(full.corpus)[:40]}
    embed = local_embedding()
    calls = []
    original = type(embed).get_text_embedding_batch

    def counted(self, texts, **kwargs):
        if texts:  # LlamaIndex asks for the nodes that have no embedding yet, an empty list when none
            calls.append(len(texts))
        return original(self, texts, **kwargs)

    monkeypatch.setattr(type(embed), "get_text_embedding_batch", counted)
    plain = retrieve_run(build_vector_index(ds, embed_model=embed), ds.queries, top_k=5)  # no cache: LlamaIndex embeds
    assert calls == [40] and not (tmp_path / "cache").exists()
    first = retrieve_run(build_vector_index(ds, embed_model=embed, cache_dir=tmp_path / "cache"), ds.queries, top_k=5)
    assert calls == [40, 40] and len(list((tmp_path / "cache").glob("*.npy"))) == 1
    monkeypatch.setenv(ENV_EMBEDDING_CACHE, str(tmp_path / "cache"))  # as run-notebooks sets it
    again = retrieve_run(build_vector_index(ds, embed_model=embed), ds.queries, top_k=5)
    assert calls == [40, 40], "the second index read its embeddings back"
    assert plain == first == again  # the same scores to the last bit, not only the same order
    ds.corpus = {**ds.corpus, next(iter(ds.corpus)): "another text"}  # a changed corpus is a miss
    build_vector_index(ds, embed_model=embed)
    assert calls == [40, 40, 40]
