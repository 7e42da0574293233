"""TODO docstring
"""

from __future__ import annotations

import os

from sentence_transformers import CrossEncoder, SentenceTransformer
from transformers.utils import logging as hf_logging

from rerank_utils.models.bridge import is_bridge_folder
from rerank_utils.models.resolve import (
    DEFAULT_MODEL,
    is_offline,
    model_kind,
    resolve_model,
)


def load_bi_encoder(name: str | os.PathLike | None = DEFAULT_MODEL, device: str | None = None, **kwargs):
    """A ``SentenceTransformer`` (first-stage embedding model) for ``name``, resolved offline first."""

    resolved = resolve_model(name)
    return SentenceTransformer(resolved, device=device, local_files_only=model_kind(name) != "hub" or is_offline(), **kwargs)


def load_cross_encoder(
    name: str | os.PathLike | None = DEFAULT_MODEL,
    device: str | None = None,
    max_length: int | None = None,
    num_labels: int = 1,
    **kwargs,
):
    """A sentence-transformers ``CrossEncoder`` for ``name``.

    A hub reranker (``cross-encoder/ms-marco-*``, ``BAAI/bge-reranker-*``) loads with its trained head.
    An embedding model (the packaged default) loads with a NEW, randomly initialised scoring head: fine
    for timing and as the start of fine-tuning, meaningless as a ranker until it is trained.
    A folder holding a saved bridge reranker (:mod:`rerank_utils.bridge`) loads as one.
    """

    resolved = resolve_model(name)

    if model_kind(name) == "local" and is_bridge_folder(resolved):
        # a saved bridge reranker (rerank_utils.bridge): its module class is this package's own code
        return CrossEncoder(resolved, device=device, max_length=max_length, local_files_only=True, trust_remote_code=True, **kwargs)
    # transformers logs long warnings about the newly initialised head; the docstring says it instead.
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return CrossEncoder(
            resolved,
            device=device,
            max_length=max_length,
            num_labels=num_labels,
            local_files_only=model_kind(name) != "hub" or is_offline(),
            **kwargs,
        )
    finally:
        hf_logging.set_verbosity(level)
