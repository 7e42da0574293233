"""Integration: the bridge reranker over the packaged all-MiniLM-L6-v2 on FAQ texts: step 0 ranks exactly
as the bi-encoder does, and LlamaIndex's postprocessor over the saved folder agrees with the package."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rerank_utils.data.faq import load_faq
from rerank_utils.models.bridge import build_bridge_reranker, is_bridge
from rerank_utils.models.loading import load_bi_encoder
from rerank_utils.retrieval.dense import DenseRetriever
from tests.faq_slices import faq_slice

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def faq_pairs():
    ds = load_faq()
    qids = list(ds.queries)[:6]
    ds = faq_slice(ds.subset(qids), documents=120)
    dense = DenseRetriever(ds.corpus, load_bi_encoder("default"))
    run = dense.search({q: ds.queries[q] for q in qids}, top_k=5)
    return ds, run, [(ds.queries[q], ds.corpus[d]) for q in qids for d in run[q]]


def test_step_zero_is_the_bi_encoder_on_faq_texts(faq_pairs):
    ds, run, pairs = faq_pairs
    bi = load_bi_encoder("default")
    q = bi.encode([p[0] for p in pairs], convert_to_tensor=True)
    d = bi.encode([p[1] for p in pairs], convert_to_tensor=True)
    cos = torch.nn.functional.cosine_similarity(q, d).numpy()
    ce = build_bridge_reranker("default", bias_start=-8.0)
    assert ce[0].pooling == "mean" and ce[0].max_seq_length == 256
    scores = ce.predict(pairs, batch_size=8)
    assert np.allclose(scores, 20.0 * cos, atol=0.02)  # e^-8 of cross-attention leaks: ~1e-3 in cosine
    # ... and the order inside each query's top-5 is the bi-encoder's own
    for i, qid in enumerate(list(run)):
        assert list(np.argsort(-scores[i * 5 : i * 5 + 5], kind="stable")) == [0, 1, 2, 3, 4], qid
    # the dense retriever's scores are the same cosines
    assert np.allclose([s for qid in run for s in run[qid].values()], cos, atol=1e-5)


def test_saved_bridge_in_llamaindex_matches_the_package(faq_pairs, tmp_path):
    from llama_index.core.postprocessor import SentenceTransformerRerank
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from rerank_utils.models.loading import load_cross_encoder

    ds, run, _ = faq_pairs
    ce = build_bridge_reranker("default", bias_mode="head", bias_start=-2.0)  # partly open: not the bi-encoder order
    ce.save_pretrained(str(tmp_path / "bridge"))
    ours = load_cross_encoder(str(tmp_path / "bridge"))
    assert is_bridge(ours)
    rerank = SentenceTransformerRerank(model=str(tmp_path / "bridge"), top_n=5, device="cpu")
    for qid in list(run)[:3]:
        docs = list(run[qid])
        nodes = [NodeWithScore(node=TextNode(id_=d, text=ds.corpus[d]), score=run[qid][d]) for d in docs]
        got = rerank.postprocess_nodes(nodes, query_bundle=QueryBundle(ds.queries[qid]))
        scores = ours.predict([(ds.queries[qid], ds.corpus[d]) for d in docs])
        assert [n.node.node_id for n in got] == [docs[i] for i in np.argsort(-scores, kind="stable")]
        assert np.allclose(sorted(scores, reverse=True), [n.score for n in got], atol=1e-4)
