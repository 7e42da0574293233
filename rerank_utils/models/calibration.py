"""Scores a client can threshold: Platt scaling of a reranker's raw score, fitted on validation and saved with the
model (``calibration.json``), applied wherever a probability is returned (the service's TEI and Cohere shapes,
the LlamaIndex postprocessor's ``node.score``).

Why: a bridge reranker's raw score is ``scale x cosine`` (about 0 to 25), so a plain sigmoid sits near 1 for every
document, and in float32 it is exactly 1.0 above a logit of about 17, so anything ranked on float32 probabilities
ties. :class:`PlattCalibration` maps a raw score ``s`` to ``sigmoid(a * s + b)`` in float64, fitted by
:func:`fit_platt` (Platt's method: the log loss of smoothed targets, minimised with ``scipy.optimize.minimize``;
no library fits the two numbers on their own). Ranking is always done on raw scores; this only changes the
numbers returned. Introduced in notebook ``05_deployment``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from rerank_utils.models.score_memo import memo_raw_scores

CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class PlattCalibration:
    """``probability(s) = sigmoid(a * s + b)``, with where it was fitted (``fitted_on``), on how many pairs."""
    a: float
    b: float
    pairs: int = 0
    positives: int = 0
    fitted_on: str = ""
    method: str = "platt"

    def probability(self, raw: Any) -> np.ndarray:
        """Calibrated probabilities of raw scores, in float64 (no saturation at float32's 1.0)."""
        return expit(self.a * np.asarray(raw, dtype=np.float64) + self.b)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / CALIBRATION_FILE
        path.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")
        return path


def fit_platt(scores: Sequence[float], labels: Sequence[int | bool], fitted_on: str = "") -> PlattCalibration:
    """Fit ``sigmoid(a * s + b)`` to binary ``labels`` of raw ``scores`` by Platt's method: targets smoothed to
    ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` (so a separable set does not send ``a`` to infinity), log loss
    minimised from ``a = 1, b = 0`` with BFGS. Needs at least one positive and one negative."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"fit_platt: {s.shape} scores and {y.shape} labels; give one label per score")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"fit_platt: {n_pos} positive and {n_neg} negative pairs; calibration needs both")
    if not np.all(np.isfinite(s)):
        raise ValueError("fit_platt: a score is NaN or infinite")
    target = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    centre, spread = s.mean(), s.std() or 1.0  # fit on standardised scores (well conditioned), then map back

    def loss(p: np.ndarray) -> float:
        z = p[0] * (s - centre) / spread + p[1]
        return -float(np.sum(target * log_expit(z) + (1 - target) * log_expit(-z)))

    fit = minimize(loss, x0=np.array([1.0, 0.0]), method="BFGS")
    a = float(fit.x[0] / spread)
    return PlattCalibration(a=a, b=float(fit.x[1] - a * centre), pairs=int(s.size), positives=n_pos, fitted_on=fitted_on)


def calibrate_reranker(model: Any, dataset: Any, run: dict[str, dict[str, float]], top_k: int = 20, fitted_on: str = "validation",
                       batch_size: int = 32) -> PlattCalibration:
    """Fit :func:`fit_platt` to ``model``'s raw scores of each query's first-stage top-``top_k`` in ``run`` over
    ``dataset`` (a :class:`~rerank_utils.data.records.RetrievalDataset`: the VALIDATION split, never test), a pair
    labelled positive when its qrels grade is > 0 (unjudged documents are negatives, as in the metrics)."""
    pairs, labels = [], []
    for q in dataset.queries:
        docs = sorted(run.get(q, {}), key=lambda d: -run[q][d])[:top_k]
        pairs += [(dataset.queries[q], dataset.corpus[d]) for d in docs]
        labels += [dataset.qrels.get(q, {}).get(d, 0) > 0 for d in docs]
    if not pairs:
        raise ValueError("calibrate_reranker: the run has no candidates for the dataset's queries")
    scores = memo_raw_scores(model, pairs, batch_size=batch_size)  # pairs this notebook already scored: from memory
    return fit_platt(scores, labels, fitted_on=f"{fitted_on}: {len(dataset.queries)} queries x top-{top_k}")


def copy_calibration(source_dir: str | Path, target_dir: str | Path) -> Path | None:
    """Copy a model folder's ``calibration.json`` beside an export of it (an ONNX folder is served alone); the
    copied path, or ``None`` when the source has none."""
    source = Path(source_dir) / CALIBRATION_FILE
    if not source.is_file():
        return None
    Path(target_dir).mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(source, Path(target_dir) / CALIBRATION_FILE))


def load_calibration(folder: str | Path) -> PlattCalibration | None:
    """The calibration saved in a model folder, or ``None`` when it has none (then callers use a plain sigmoid)."""
    path = Path(folder) / CALIBRATION_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    try:
        return PlattCalibration(**data)
    except TypeError as exc:
        raise ValueError(f"{path}: not a calibration ({exc}); delete it to serve uncalibrated sigmoid scores, or refit it") from exc
