"""A reranker's scores without saturation: :func:`raw_scores` (before the activation: a standard cross-encoder's
logit, a bridge's ``scale x cosine``), :func:`activation_of` (the model's own activation, in float64) and
:func:`ranking_scores` (what ``predict`` returns, computed from the raw scores in float64).

Why: ``CrossEncoder.predict`` applies its sigmoid in float32, which is exactly 1.0 above a logit of about 17, so
documents ranked on those probabilities tie. Every ranking in the package (:func:`~rerank_utils.retrieval.reranking.rerank_run`,
the service, the LlamaIndex postprocessor) orders by these scores instead. Works for any scorer with
``predict(pairs, batch_size=...)``: one that takes ``activation_fn`` (a ``CrossEncoder``, an ONNX cross-encoder, a
:class:`~rerank_utils.models.precision.Bf16Autocast` around either) is asked for its raw scores; any other is taken
as returning raw scores already.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import numpy as np
import torch
from scipy.special import expit

from rerank_utils.models.precision import Bf16Autocast


def _inner(model: Any) -> Any:
    return model.model if isinstance(model, Bf16Autocast) else model


def takes_activation(model: Any) -> bool:
    """Whether ``model.predict`` takes ``activation_fn`` (so its raw scores can be asked for)."""
    try:
        return "activation_fn" in inspect.signature(_inner(model).predict).parameters
    except (TypeError, ValueError):
        return False


def raw_scores(model: Any, pairs: Sequence[tuple[str, str]], batch_size: int = 32, show_progress_bar: bool = False) -> np.ndarray:
    """``model``'s scores of ``pairs`` before its activation, as float64."""
    kwargs = {"activation_fn": torch.nn.Identity()} if takes_activation(model) else {}
    return np.asarray(model.predict(list(pairs), batch_size=batch_size, show_progress_bar=show_progress_bar, **kwargs), dtype=np.float64)


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
