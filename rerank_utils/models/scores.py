"""A reranker's scores without saturation: :func:`raw_scores` (before the activation: a standard cross-encoder's
logit, a bridge's ``scale x cosine``), :func:`activation_of` (the model's own activation, in float64) and
:func:`ranking_scores` (what ``predict`` returns, computed from the raw scores in float64).

Why: ``CrossEncoder.predict`` applies its sigmoid in float32, which is exactly 1.0 above a logit of about 17, so
documents ranked on those probabilities tie. Every ranking in the package (:func:`~rerank_utils.retrieval.reranking.rerank_run`,
the service, the LlamaIndex postprocessor) orders by these scores instead. Works for any scorer with
``predict(pairs, batch_size=...)``: one that takes ``activation_fn`` (a ``CrossEncoder``, an ONNX cross-encoder, a
:class:`~rerank_utils.models.precision.Bf16Autocast` around either) is asked for its raw scores; any other is taken
as returning raw scores already.

A PyTorch ``CrossEncoder`` (a standard cross-encoder or a bridge) is fed batches cut from its pairs sorted by TOKEN
count (:func:`token_sorted_batches`), where ``CrossEncoder.predict`` cuts them from a sort by characters: each batch
pads to its own longest pair, so about a fifth less is computed on the FAQ's pairs and the scores are the same up to
float32 rounding (1e-5 of a logit). The exported scorers sort by tokens themselves
(:mod:`~rerank_utils.models.onnx_runtime`).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import numpy as np
import torch
from scipy.special import expit
from sentence_transformers import CrossEncoder
from tqdm.auto import tqdm

from rerank_utils.models.precision import Bf16Autocast


def _inner(model: Any) -> Any:
    return model.model if isinstance(model, Bf16Autocast) else model


def takes_activation(model: Any) -> bool:
    """Whether ``model.predict`` takes ``activation_fn`` (so its raw scores can be asked for)."""
    try:
        return "activation_fn" in inspect.signature(_inner(model).predict).parameters
    except (TypeError, ValueError):
        return False


def token_sorted_batches(model: Any, pairs: Sequence[tuple[str, str]], batch_size: int) -> list[np.ndarray] | None:
    """The positions of ``pairs`` in batches of ``batch_size``, longest in tokens first, for a PyTorch ``CrossEncoder``
    (or :class:`~rerank_utils.models.precision.Bf16Autocast` around one); ``None`` for any other scorer.

    Hand-written because ``CrossEncoder.predict`` sorts by characters (``_input_length``), which leaves about a fifth
    of the tokens computed as padding on the FAQ's pairs. Measured side by side on 1,000 validation pairs (notebook
    03's models, 2 cores, the extra tokenisation included): 1.22x (standard) and 1.25x (bridge) faster, scores within
    1e-5 (``benchmarks/token_sorted_scoring.py``)."""
    inner = _inner(model)
    if not isinstance(inner, CrossEncoder) or batch_size < 1 or len(pairs) <= 1:
        return None
    encoded = inner.tokenizer([p[0] for p in pairs], [p[1] for p in pairs], truncation=True, max_length=inner.max_seq_length)
    lengths = np.fromiter((len(ids) for ids in encoded["input_ids"]), dtype=np.int64, count=len(pairs))
    order = np.argsort(-lengths, kind="stable")
    return [order[start: start + batch_size] for start in range(0, len(order), batch_size)]


def raw_scores(model: Any, pairs: Sequence[tuple[str, str]], batch_size: int = 32, show_progress_bar: bool = False) -> np.ndarray:
    """``model``'s scores of ``pairs`` before its activation, as float64, in the order given (a PyTorch
    ``CrossEncoder``'s in batches sorted by tokens: :func:`token_sorted_batches`)."""
    pairs = list(pairs)
    kwargs = {"activation_fn": torch.nn.Identity()} if takes_activation(model) else {}
    batches = token_sorted_batches(model, pairs, batch_size)
    if batches is None:
        return np.asarray(model.predict(pairs, batch_size=batch_size, show_progress_bar=show_progress_bar, **kwargs), dtype=np.float64)
    scores = np.empty(len(pairs), dtype=np.float64)
    for idx in tqdm(batches, desc="Batches", disable=not show_progress_bar):
        scores[idx] = model.predict([pairs[i] for i in idx], batch_size=len(idx), show_progress_bar=False, **kwargs)
    return scores


def activation_of(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``model``'s own activation as a float64 function: a sigmoid (a standard cross-encoder's default), the
    identity (a bridge, an ONNX bridge, any scorer that does not take ``activation_fn``), or the model's torch
    activation applied to float64."""
    inner = _inner(model)
    if not takes_activation(model):
        return lambda x: np.asarray(x, dtype=np.float64)
    act = getattr(inner, "activation_fn", None)
    if isinstance(act, torch.nn.Sigmoid) or getattr(inner, "activation", None) == "sigmoid":
        return lambda x: expit(np.asarray(x, dtype=np.float64))
    if act is None or isinstance(act, torch.nn.Identity):
        return lambda x: np.asarray(x, dtype=np.float64)
    return lambda x: act(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()


def ranking_scores(model: Any, pairs: Sequence[tuple[str, str]], batch_size: int = 32, show_progress_bar: bool = False) -> np.ndarray:
    """What ``model.predict(pairs)`` returns (its activation applied), computed in float64 from the raw scores so
    that no two documents tie where their raw scores differ (a float64 sigmoid is distinct up to a logit of about 36)."""
    return activation_of(model)(raw_scores(model, pairs, batch_size=batch_size, show_progress_bar=show_progress_bar))
