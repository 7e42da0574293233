"""Integration: the LlamaIndex path end to end on the packaged model and FAQ: a VectorStoreIndex with the
local embedding, reranked by LlamaIndex's SentenceTransformerRerank and by the package's postprocessor,
evaluated by the same evaluate_pipeline() as the package's own pipeline: the same rankings."""

from __future__ import annotations

import pytest

from rerank_utils.data.faq import load_faq
from rerank_utils.evaluation.metrics import run_agreement
from rerank_utils.evaluation.pipelines import Pipeline, evaluate_pipeline
from rerank_utils.integrations.llamaindex import LlamaIndexPipeline, no_llm_query_engine
from rerank_utils.models.bridge import build_bridge_reranker
from rerank_utils.models.loading import load_bi_encoder
from rerank_utils.retrieval.dense import DenseRetriever
from tests.faq_slices import faq_slice

pytestmark = pytest.mark.integration


def test_llamaindex_rerank_agrees_with_the_package(tmp_path):
    from llama_index.core.postprocessor import SentenceTransformerRerank

    from rerank_utils.integrations.llamaindex import (
        build_vector_index,
        cross_encoder_reranker,
        local_embedding,
    )

    ds = faq_slice(load_faq().sample(10, seed=7), documents=120)
    folder = tmp_path / "bridge"
    build_bridge_reranker("default", bias_start=-3.0).save_pretrained(str(folder))  # partly open: its own order
    reranker = cross_encoder_reranker(str(folder), top_n=10, batch_size=16)
    index = build_vector_index(ds, embed_model=local_embedding("default"))
    ours = evaluate_pipeline(LlamaIndexPipeline("li + ours", index.as_retriever(similarity_top_k=10), [reranker]), ds.queries, ds.qrels)
    theirs = evaluate_pipeline(
        LlamaIndexPipeline("li + st", index.as_retriever(similarity_top_k=10), [SentenceTransformerRerank(model=str(folder), top_n=10, device="cpu")]),
        ds.queries, ds.qrels,
    )
    from rerank_utils.models.loading import load_cross_encoder

    package = evaluate_pipeline(Pipeline("package", DenseRetriever(ds.corpus, load_bi_encoder("default")), ds.corpus,
                                reranker=load_cross_encoder(str(folder)), top_k=10), ds.queries, ds.qrels)
    assert run_agreement(package.run, ours.run, k=10) == 1.0
    assert run_agreement(package.run, theirs.run, k=10) == 1.0
    assert ours.result.aggregate == pytest.approx(package.result.aggregate)
    # the guide's query_engine code, offline: reranked source nodes, no LLM text
    engine = no_llm_query_engine(index, top_k=10, node_postprocessors=[cross_encoder_reranker(str(folder), top_n=3)])
    q = next(iter(ds.queries))
    response = engine.query(ds.queries[q])
    assert [n.node.node_id for n in response.source_nodes] == list(package.run[q])[:3] and not response.response
