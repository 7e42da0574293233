"""A reranker's raw scores kept in memory per (model weights, query, passage): the same pair is scored once
(issue 15: no needless work).

Evaluation scores the same pairs again and again: :func:`~rerank_utils.evaluation.reports.evaluate_reranker`
reranks BM25's, the bi-encoder's and the fine-tuned retriever's top-20 of the same questions with the same model
(their candidates overlap), a notebook evaluates one reranker in several tables, and the fusion search and the
calibration score the same validation top-20. :func:`memo_raw_scores` scores only the pairs it has not seen with
these very weights in this process and returns the rest from memory; :func:`counts` says how many of each.

The key is :func:`~rerank_utils.models.fingerprint.model_fingerprint` (a digest of every weight and the truncation
length), so a model trained further in place is a new model, never a stale hit. A scorer without torch weights (an
ONNX or OpenVINO model, :class:`~rerank_utils.models.precision.Bf16Autocast` around a model) is never memoised:
every call computes. A memoised score can differ from a fresh one in the last float32 bits, since a pair's padding
depends on the batch it was first scored in (1e-6 of a logit here); rankings are compared to 1e-5 in the tests.

Opt-in per call (``rerank_run(..., memo=True)``): evaluation uses it; nothing that measures speed does
(``compare_backends``, the benchmarks, the service and the LlamaIndex postprocessor always compute). The memo keeps
the :data:`MODELS_KEPT` most recently used models' scores; :func:`forget` empties it. Hand-written because
sentence-transformers keeps nothing between ``predict`` calls.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from rerank_utils.models.fingerprint import model_fingerprint
from rerank_utils.models.scores import raw_scores

#: How many models' scores are kept (least recently used dropped first): one notebook evaluates a handful.
MODELS_KEPT = 4

_MEMO: OrderedDict[str, dict[tuple[str, str], float]] = OrderedDict()
_COUNTS = {"scored": 0, "from_memory": 0}


def forget() -> None:
    """Drop every memoised score (and reset :func:`counts`)."""
    _MEMO.clear()
    _COUNTS.update(scored=0, from_memory=0)


def counts() -> dict[str, int]:
    """Pairs scored by a model and pairs answered from memory since the last :func:`forget`."""
    return dict(_COUNTS)


def memo_raw_scores(model: Any, pairs: Sequence[tuple[str, str]], batch_size: int = 32,
                    show_progress_bar: bool = False) -> np.ndarray:
    """:func:`~rerank_utils.models.scores.raw_scores` of ``pairs``, computing only the pairs this model's weights
    have not scored before (in one ``predict`` call, duplicates within ``pairs`` once)."""
    pairs = [(str(q), str(d)) for q, d in pairs]
    key = model_fingerprint(model)
    if key is None:
        return raw_scores(model, pairs, batch_size=batch_size, show_progress_bar=show_progress_bar)
    known = _MEMO.pop(key, {})
    _MEMO[key] = known  # most recently used last
    while len(_MEMO) > MODELS_KEPT:
        _MEMO.popitem(last=False)
    todo = list(dict.fromkeys(p for p in pairs if p not in known))
    _COUNTS["scored"] += len(todo)
    _COUNTS["from_memory"] += len(pairs) - len(todo)
    if todo:
        known.update(zip(todo, raw_scores(model, todo, batch_size=batch_size, show_progress_bar=show_progress_bar).tolist()))
    return np.array([known[p] for p in pairs], dtype=np.float64)
