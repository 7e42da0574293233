"""LlamaIndex glue: the same first stage built with LlamaIndex, with no LLM and no API key.

Introduced in notebook ``00_concepts`` (retriever only); ``04_evaluation`` adds rerankers.
"""

from __future__ import annotations

from .data import RetrievalDataset
from .models import DEFAULT_MODEL, resolve_model


def local_embedding(model_name: str = DEFAULT_MODEL, device: str | None = None, batch_size: int = 64):
    """A LlamaIndex ``HuggingFaceEmbedding`` over a model resolved offline first (the packaged default)."""
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(
        model_name=resolve_model(model_name), device=device, embed_batch_size=batch_size, normalize=True
    )


def build_vector_index(ds: RetrievalDataset, embed_model=None, model_name: str = DEFAULT_MODEL, device: str | None = None):
    """A ``VectorStoreIndex`` with one ``TextNode`` per corpus document (node id = doc id).

    The documents are FAQ answers or paragraphs already, so they are indexed whole (no chunking),
    exactly as the package's own :class:`~rerank_utils.retrieval.DenseRetriever` sees them.
    """
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode

    embed_model = embed_model or local_embedding(model_name, device=device)
    nodes = [
        TextNode(id_=doc_id, text=text, metadata=dict(ds.doc_meta.get(doc_id, {})), excluded_embed_metadata_keys=list(ds.doc_meta.get(doc_id, {})))
        for doc_id, text in ds.corpus.items()
    ]
    return VectorStoreIndex(nodes=nodes, embed_model=embed_model)


def retrieve_run(index, queries: dict[str, str], top_k: int = 10) -> dict[str, dict[str, float]]:
    """Retrieve ``top_k`` nodes per query with ``index.as_retriever``: a run ``{qid: {doc_id: score}}``."""
    retriever = index.as_retriever(similarity_top_k=top_k)
    return {qid: {n.node.node_id: float(n.score) for n in retriever.retrieve(text)} for qid, text in queries.items()}
