"""A late-interaction (ColBERT-style MaxSim) reranker over the embedding model's own token embeddings (issue 12).

The bridge reranker reads query and passage together; a late-interaction reranker keeps them apart to the
last step and compares them token by token: the score of (query, passage) is, over the query's tokens, each
one's best cosine similarity to any passage token (``MaxSim``, Khattab & Zaharia, 2020; here its mean over
the query tokens, ``meanmaxsim``, which orders one query's passages the same way and puts queries on one
scale for fusion). Over the *fine-tuned* embedding model it is a second opinion with no new weights: the same
encoder, read token by token instead of mean-pooled.

Built on sentence-transformers' own ``MultiVectorEncoder`` (its MaxSim scoring, masks and encode methods),
with the embedding model's transformer and no projection head: the ColBERT recipe adds a randomly initialised
128-d projection that only training makes useful, while the retriever's 384-d token embeddings are already
trained. :meth:`MaxSimReranker.predict` has ``CrossEncoder.predict``'s signature, so every helper that reranks
with a cross-encoder (``rerank_run``, ``fusion_search``, :class:`~rerank_utils.evaluation.pipelines.Pipeline`) takes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from sentence_transformers import MultiVectorEncoder
from sentence_transformers.base.modules import Normalize, Transformer
from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

from rerank_utils.models.resolve import resolve_model


def maxsim_encoder(model: str | Path = "default", max_length: int = 256, device: str | None = None):
    """A ``MultiVectorEncoder`` over ``model``'s transformer (a sentence-transformers folder such as the
    fine-tuned retriever, or ``"default"``): its token embeddings, L2-normalised, padding masked, scored by
    mean MaxSim."""
    path = resolve_model(str(model))
    modules = [Transformer(path, max_seq_length=max_length), MultiVectorMask(), Normalize(module_input_name="token_embeddings")]
    return MultiVectorEncoder(modules=modules, device=device, similarity_fn_name="meanmaxsim")


class MaxSimReranker:
    """Score (query, passage) pairs with a ``MultiVectorEncoder`` (:func:`maxsim_encoder`); each distinct
    query and passage of a call is encoded once."""
    def __init__(self, encoder: Any):
        self.encoder = encoder

    @classmethod
    def from_model(cls, model: str | Path = "default", max_length: int = 256, device: str | None = None) -> "MaxSimReranker":
        return cls(maxsim_encoder(model, max_length=max_length, device=device))

    def predict(self, pairs: Sequence[Sequence[str]], batch_size: int = 32, show_progress_bar: bool = False, **_) -> np.ndarray:
        """One mean-MaxSim score per ``(query, passage)`` pair, in the pairs' order."""
        if not len(pairs):
            return np.zeros(0, dtype=float)
        queries = list(dict.fromkeys(q for q, _ in pairs))
        passages = list(dict.fromkeys(p for _, p in pairs))
        with torch.inference_mode():
            q_emb = dict(zip(queries, self.encoder.encode_query(queries, batch_size=batch_size, show_progress_bar=show_progress_bar)))
            p_emb = dict(zip(passages, self.encoder.encode_document(passages, batch_size=batch_size, show_progress_bar=show_progress_bar)))
            scores = self.encoder.similarity_pairwise([q_emb[q] for q, _ in pairs], [p_emb[p] for _, p in pairs])
        return scores.float().cpu().numpy().astype(float)
