"""A digest of a model's weights: the key of the corpus-embedding cache
(:mod:`rerank_utils.retrieval.embedding_cache`) and of the reranker score memo (:mod:`rerank_utils.models.score_memo`).

A model fine-tuned in place, moved to another device, given another ``max_seq_length`` or tokenizer gets another
fingerprint, so neither cache can hand back a stale result. Hand-written: Hugging Face hashes files on the hub, not
the tensors of a model in memory.
"""

from __future__ import annotations

import hashlib

import torch


def model_fingerprint(model) -> str | None:
    """A digest of ``model``'s weights, module summary, tokenizer class and device; for a scorer without torch weights,
    the ``weights_fingerprint`` it carries (an export of known weights: :func:`~rerank_utils.models.fast.fast_reranker`),
    else ``None`` (a test double, a remote API), which is then never cached."""
    if not isinstance(model, torch.nn.Module):
        return getattr(model, "weights_fingerprint", None)
    h = hashlib.blake2b(digest_size=20)
    h.update(repr(model).encode())
    h.update(str(getattr(model, "max_seq_length", None)).encode())  # not in a SentenceTransformer's repr
    h.update(str(getattr(model, "max_length", None)).encode())  # nor a CrossEncoder's truncation length
    h.update(type(getattr(model, "tokenizer", None)).__name__.encode())
    h.update(str(getattr(model, "device", "")).encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
