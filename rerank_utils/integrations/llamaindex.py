"""LlamaIndex glue: the same first stage built with LlamaIndex, with no LLM and no API key.

Introduced in notebook ``00_concepts`` (retriever only); ``14_bridge_reranker`` adds the package's own
reranking postprocessor (:func:`cross_encoder_reranker`), ``04_evaluation`` puts it in a query pipeline.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from llama_index.core import VectorStoreIndex
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms import MockLLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers.no_text import NoText
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.embeddings.huggingface import HuggingFaceEmbedding

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.evaluation.pipelines import _ordered
from rerank_utils.models.calibration import PlattCalibration, load_calibration
from rerank_utils.models.loading import BACKENDS, load_reranker
from rerank_utils.models.scores import activation_of, raw_scores
from rerank_utils.models.resolve import DEFAULT_MODEL, resolve_model
from rerank_utils.retrieval.embedding_cache import cache_folder, cached_embeddings


def local_embedding(model_name: str = DEFAULT_MODEL, device: str | None = None, batch_size: int = 64):
    """A LlamaIndex ``HuggingFaceEmbedding`` over a model resolved offline first (the packaged default)."""
    return HuggingFaceEmbedding(
        model_name=resolve_model(model_name), device=device, embed_batch_size=batch_size, normalize=True
    )


def build_vector_index(
    ds: RetrievalDataset, embed_model=None, model_name: str = DEFAULT_MODEL, device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
):
    """A ``VectorStoreIndex`` with one ``TextNode`` per corpus document (node id = doc id).

    The documents are FAQ answers or paragraphs already, so they are indexed whole (no chunking),
    exactly as the package's own :class:`~rerank_utils.retrieval.dense.DenseRetriever` sees them.
    With an embedding cache (``cache_dir``, or ``$RERANK_EMBEDDING_CACHE`` as ``run-notebooks`` sets it), the
    nodes' embeddings come from :func:`~rerank_utils.retrieval.embedding_cache.cached_embeddings`, computed by
    ``embed_model`` itself the first time (so they are LlamaIndex's, to the bit) and read back when the same
    encoder indexes the same texts again; LlamaIndex embeds only nodes that have no embedding yet.
    """
    embed_model = embed_model or local_embedding(model_name, device=device)
    nodes = [
        TextNode(id_=doc_id, text=text, metadata=dict(ds.doc_meta.get(doc_id, {})), excluded_embed_metadata_keys=list(ds.doc_meta.get(doc_id, {})))
        for doc_id, text in ds.corpus.items()
    ]
    encoder = getattr(embed_model, "_model", None)  # HuggingFaceEmbedding's SentenceTransformer
    if nodes and cache_folder(cache_dir) is not None and isinstance(encoder, torch.nn.Module):
        unkeyed = ("model_name", "cache_folder", "show_progress_bar", "num_workers")  # the weights' digest keys the model
        settings = {k: v for k, v in embed_model.to_dict().items() if k not in unkeyed}
        emb, _ = cached_embeddings(
            encoder, [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes], json.dumps(settings, sort_keys=True),
            lambda texts: np.asarray(embed_model.get_text_embedding_batch(texts), dtype=np.float32), cache_dir=cache_dir,
        )
        for node, row in zip(nodes, emb):
            node.embedding = row.tolist()
    return VectorStoreIndex(nodes=nodes, embed_model=embed_model)


def retrieve_run(index, queries: dict[str, str], top_k: int = 10) -> dict[str, dict[str, float]]:
    """Retrieve ``top_k`` nodes per query with ``index.as_retriever``: a run ``{qid: {doc_id: score}}``."""
    retriever = index.as_retriever(similarity_top_k=top_k)
    return {qid: {n.node.node_id: float(n.score) for n in retriever.retrieve(text)} for qid, text in queries.items()}


def cross_encoder_reranker(
    model: Any,
    top_n: int = 5,
    batch_size: int = 32,
    device: str | None = None,
    backend: str = "torch",
    keep_retrieval_score: bool = True,
    calibration: PlattCalibration | None = None,
):
    """The package's LlamaIndex node postprocessor: rerank retrieved nodes with a cross-encoder.

    ``model``: a model folder or name (standard or bridge cross-encoder, resolved offline first), an ONNX
    export folder with ``backend="onnx"`` or ``"openvino"`` (both through :func:`rerank_utils.models.loading.load_reranker`), or a loaded model with ``predict``. Unlike LlamaIndex's
    ``SentenceTransformerRerank`` it takes a batch size, an ONNX backend and a loaded model, and keeps
    the first stage's score beside the new one (``node.metadata["retrieval_score"]``, excluded from the
    text the model and the LLM see). Nodes are ordered by the model's raw scores; ``node.score`` is the calibrated
    probability where there is a calibration (``calibration``, or the model folder's ``calibration.json``), else the
    model's own activation computed in float64 (never a float32 sigmoid that ties at 1.0).
    Introduced in notebook ``14_bridge_reranker`` (``04_evaluation`` uses it).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}")
    if top_n < 1 or batch_size < 1:
        raise ValueError(f"top_n={top_n}, batch_size={batch_size}: both must be >= 1")
    if isinstance(model, (str, os.PathLike)):
        calibration = calibration or (load_calibration(model) if os.path.isdir(model) else None)
        model = load_reranker(model, backend=backend, device=device)
    return _postprocessor_class()(top_n=top_n, batch_size=batch_size, keep_retrieval_score=keep_retrieval_score, scorer=model,
                                  calibration=calibration)


def _postprocessor_class():

    class CrossEncoderReranker(BaseNodePostprocessor):
        top_n: int = Field(default=5, description="nodes kept, best first")
        batch_size: int = Field(default=32, description="pairs per forward pass")
        keep_retrieval_score: bool = Field(default=True, description="keep the first stage's score in metadata")
        _scorer: Any = PrivateAttr()
        _calibration: Any = PrivateAttr()

        def __init__(self, scorer: Any, calibration: PlattCalibration | None = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._scorer, self._calibration = scorer, calibration

        @classmethod
        def class_name(cls) -> str:
            return "RerankUtilsCrossEncoderReranker"

        def _postprocess_nodes(self, nodes, query_bundle=None):
            if query_bundle is None:
                raise ValueError("CrossEncoderReranker needs the query: call postprocess_nodes(nodes, query_str=...)")
            if not nodes:
                return []
            pairs = [(query_bundle.query_str, n.node.get_content(metadata_mode=MetadataMode.EMBED)) for n in nodes]
            raw = raw_scores(self._scorer, pairs, batch_size=self.batch_size)
            scores = self._calibration.probability(raw) if self._calibration is not None else activation_of(self._scorer)(raw)
            order = sorted(range(len(nodes)), key=lambda i: -raw[i])  # stable: ties keep the first stage's order
            out = []
            for i in order:
                n, s = nodes[i], scores[i]
                if self.keep_retrieval_score:
                    n.node.metadata["retrieval_score"] = n.score
                    for keys in (n.node.excluded_embed_metadata_keys, n.node.excluded_llm_metadata_keys):
                        if "retrieval_score" not in keys:
                            keys.append("retrieval_score")
                out.append(NodeWithScore(node=n.node, score=float(s)))
            return out[: self.top_n]

    return CrossEncoderReranker


@dataclass
class LlamaIndexPipeline:
    """A LlamaIndex retriever (``similarity_top_k`` = the candidates) followed by node postprocessors (e.g.
    ``SentenceTransformerRerank`` or :func:`rerank_utils.integrations.llamaindex.cross_encoder_reranker`); node ids must
    be the corpus's doc ids (as :func:`rerank_utils.integrations.llamaindex.build_vector_index` makes them)."""
    name: str
    retriever: Any
    postprocessors: list = field(default_factory=list)

    def search(self, query: str) -> dict[str, float]:
        bundle = QueryBundle(query)
        nodes = self.retriever.retrieve(bundle)
        for post in self.postprocessors:
            nodes = post.postprocess_nodes(nodes, query_bundle=bundle)
        out: dict[str, float] = {}
        for n in nodes:  # in the order the last stage returned them: scores may tie
            out[n.node.node_id] = float(n.score) if n.score is not None else float("nan")
        return _ordered(out, [n.node.node_id for n in nodes])


def no_llm_query_engine(index, top_k: int = 20, node_postprocessors: list | None = None):
    """A LlamaIndex query engine that never calls an LLM: retrieval, the postprocessors, and a response
    with the source nodes and no text (``response_mode="no_text"``, a ``MockLLM`` so no API key is read).
    The guide's ``query_engine.retrieve(...)`` / ``query_engine.query(...).source_nodes`` code runs offline."""
    # NoText built by response_mode="no_text" would still ask Settings.llm for a default (OpenAI): give it one
    return RetrieverQueryEngine.from_args(
        index.as_retriever(similarity_top_k=top_k), llm=MockLLM(), response_synthesizer=NoText(llm=MockLLM()),
        node_postprocessors=list(node_postprocessors or []),
    )
