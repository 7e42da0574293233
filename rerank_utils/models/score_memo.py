"""A reranker's raw scores kept per (model weights, query, passage), in memory and, when asked, on disk: the same
pair is scored once (issue 15: no needless work).

Evaluation scores the same pairs again and again: :func:`~rerank_utils.evaluation.reports.evaluate_reranker`
reranks BM25's, the bi-encoder's and the fine-tuned retriever's top-20 of the same questions with the same model
(their candidates overlap), a notebook evaluates one reranker in several tables, and the fusion search and the
calibration score the same validation top-20. :func:`memo_raw_scores` scores only the pairs it has not seen with
these very weights in this process and returns the rest from memory; :func:`counts` says how many of each.

The key is :func:`~rerank_utils.models.fingerprint.model_fingerprint` (a digest of every weight and the truncation
length), so a model trained further in place is a new model, never a stale hit. A scorer without torch weights (an
ONNX or OpenVINO model, :class:`~rerank_utils.models.precision.Bf16Autocast` around a model) is never memoised:
every call computes; except the export :func:`~rerank_utils.models.fast.fast_reranker` makes, which carries its
source's fingerprint with its runtime and precision appended, so its scores are kept apart from PyTorch's. A
memoised score can differ from a fresh one in the last float32 bits, since a pair's padding depends on the batch it
was first scored in (1e-6 of a logit here); rankings are compared to 1e-5 in the tests.

Opt-in per call (``rerank_run(..., memo=True)``): evaluation uses it; nothing that measures speed does
(``compare_backends``, the benchmarks, the service and the LlamaIndex postprocessor always compute). The memo keeps
the :data:`MODELS_KEPT` most recently used models' scores; :func:`forget` empties it.

**Across processes** when the environment variable ``RERANK_SCORE_CACHE`` names a folder (``rerank-utils
run-notebooks`` and the CLI set it to ``artifacts/<profile>/cache/scores``): each model's scores are also kept in
``<folder>/<fingerprint>.json`` and read back the first time a process meets the same weights, so notebook 14
re-evaluating the two rerankers notebook 03 trained on the same test candidates, or notebook 04 reranking the top-20
03 already reranked, computes nothing again. A pair is stored as a digest of its two texts, never the texts; a file
that cannot be read back is ignored and rewritten. Unset, nothing is written.

Hand-written because sentence-transformers keeps nothing between ``predict`` calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rerank_utils.models.fingerprint import model_fingerprint
from rerank_utils.models.scores import raw_scores
from rerank_utils.paths import ENV_SCORE_CACHE

#: How many models' scores are kept (least recently used dropped first): one notebook evaluates a handful.
MODELS_KEPT = 4

#: Version of the files under ``$RERANK_SCORE_CACHE``; a file of another version is ignored.
FILE_FORMAT = 1

_MEMO: OrderedDict[str, dict[str, float]] = OrderedDict()
_COUNTS = {"scored": 0, "from_memory": 0}


def forget() -> None:
    """Drop every memoised score (and reset :func:`counts`)."""
    _MEMO.clear()
    _COUNTS.update(scored=0, from_memory=0)


def counts() -> dict[str, int]:
    """Pairs scored by a model and pairs answered from memory since the last :func:`forget`."""
    return dict(_COUNTS)


def pair_key(query: str, passage: str) -> str:
    """The key of one pair in memory and on disk: a digest of both texts, length-prefixed (so no two pairs share it)."""
    h = hashlib.blake2b(digest_size=16)
    for text in (query, passage):
        data = text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def cache_folder() -> Path | None:
    """The folder the memo's files live in: ``$RERANK_SCORE_CACHE``, else ``None`` (memory only)."""
    chosen = os.environ.get(ENV_SCORE_CACHE)
    return Path(chosen).expanduser() if chosen else None


def _read(path: Path, key: str) -> dict[str, float]:
    """A model's scores saved by an earlier process; empty when there is none or it cannot be read back whole."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(saved, dict) or saved.get("format") != FILE_FORMAT or saved.get("model") != key:
        return {}
    scores = saved.get("scores")
    if not isinstance(scores, dict) or not all(isinstance(v, float) for v in scores.values()):
        return {}
    return scores


def _write(path: Path, key: str, scores: dict[str, float]) -> None:
    """Every score this model has, replacing the file at once (never half written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as tmp:
        json.dump({"format": FILE_FORMAT, "model": key, "scores": scores}, tmp)
    os.replace(tmp.name, path)


def memo_raw_scores(model: Any, pairs: Sequence[tuple[str, str]], batch_size: int = 32,
                    show_progress_bar: bool = False) -> np.ndarray:
    """:func:`~rerank_utils.models.scores.raw_scores` of ``pairs``, computing only the pairs this model's weights
    have not scored before (in one ``predict`` call, duplicates within ``pairs`` once): in this process, or in an
    earlier one when ``$RERANK_SCORE_CACHE`` is set."""
    pairs = [(str(q), str(d)) for q, d in pairs]
    key = model_fingerprint(model)
    if key is None:
        return raw_scores(model, pairs, batch_size=batch_size, show_progress_bar=show_progress_bar)
    folder = cache_folder()
    path = folder / f"{key}.json" if folder is not None else None
    if key in _MEMO:
        known = _MEMO.pop(key)
    else:
        known = _read(path, key) if path is not None else {}
    _MEMO[key] = known  # most recently used last
    while len(_MEMO) > MODELS_KEPT:
        _MEMO.popitem(last=False)
    keys = [pair_key(q, d) for q, d in pairs]
    todo = list(dict.fromkeys((k, p) for k, p in zip(keys, pairs) if k not in known))
    _COUNTS["scored"] += len(todo)
    _COUNTS["from_memory"] += len(pairs) - len(todo)
    if todo:
        scores = raw_scores(model, [p for _, p in todo], batch_size=batch_size, show_progress_bar=show_progress_bar)
        known.update(zip((k for k, _ in todo), scores.tolist()))
        if path is not None:
            _write(path, key, known)
    return np.array([known[k] for k in keys], dtype=np.float64)
