"""LlamaIndex's VectorStoreIndex retriever on the packaged model agrees with the package's DenseRetriever."""

from __future__ import annotations

import pytest

from rerank_utils.data.faq import load_faq
from rerank_utils.evaluation.metrics import evaluate_run, run_agreement
from rerank_utils.integrations.llamaindex import build_vector_index, retrieve_run
from rerank_utils.models.loading import load_bi_encoder
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
