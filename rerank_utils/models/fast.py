"""The fast path of evaluation (issue 15): :func:`fast_reranker` hands back a PyTorch reranker exported to ONNX and run
by OpenVINO in bf16 where this CPU computes bf16 natively (AVX512-BF16 or AMX), and the model itself everywhere else.

Why: evaluation that does not itself teach PyTorch's speed (notebook 04's pipelines, top-K study and learning curve; the
CLI's ``evaluate``, by its config key ``evaluate.fast_inference``)
scores tens of thousands of pairs. On the FAQ's test questions' top-20 from three first stages (5,940 pairs, 2 cores of
the AMD EPYC with AVX512-BF16, ``benchmarks/fast_reranker.py``) OpenVINO bf16 scores them 1.98x (bridge) and 2.19x
(standard cross-encoder) faster than PyTorch fp32 in batches sorted by tokens, for an export of 1-2 s and no
calibration data; onnxruntime and OpenVINO in fp32 gain 1.06-1.54x (``benchmarks/inference_speed.py``), and bf16 where
it is emulated is slower than fp32, so elsewhere the exact PyTorch model is the fast path.

What it costs: bf16 rounding. Scores move by up to 0.06 (the bridge's ``scale x cosine``) or 0.02 (the standard's
logit), so passages that nearly tie can swap: the bridge's test NDCG@10 stayed the same to four decimals, the standard's
moved by +0.002 to +0.004 (inside the interval of no change). Nothing that measures PyTorch, trains, or selects a
checkpoint on validation goes through here.

The returned scorer carries ``runs_on`` (``"OpenVINO bf16"``) and ``weights_fingerprint`` (its source's
:func:`~rerank_utils.models.fingerprint.model_fingerprint` followed by ``-openvino-bf16``), so the score memo
(:mod:`~rerank_utils.models.score_memo`) keeps its scores apart from PyTorch's and still computes each pair once.
Hand-written because sentence-transformers' own ``backend="openvino"`` needs optimum-intel, which this project does
not install (it pulls a CUDA torch: pyproject), and its backends wrap Hugging Face model classes, not the bridge's own
module.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections import OrderedDict
from typing import Any

from sentence_transformers import CrossEncoder

from rerank_utils.models.export import export_onnx
from rerank_utils.models.fingerprint import model_fingerprint
from rerank_utils.models.loading import load_reranker
from rerank_utils.models.precision import cpu_has_bf16, resolve_precision

#: Exported scorers kept in this process, by their source's fingerprint (least recently used dropped first).
KEPT = 4

_LOADED: OrderedDict[str, Any] = OrderedDict()


def fast_path_available() -> bool:
    """Whether :func:`fast_reranker` exports: OpenVINO is installed and this CPU computes bf16 natively."""
    return importlib.util.find_spec("openvino") is not None and cpu_has_bf16()


def fast_reranker(model: Any) -> Any:
    """``model`` as evaluation should run it: a PyTorch ``CrossEncoder`` (a standard cross-encoder or a bridge) on the
    CPU becomes its export on OpenVINO bf16 where :func:`fast_path_available`, else (and for anything else: a model
    on a GPU, an exported scorer, a test double) ``model`` itself. The export lives in a temporary folder that is
    removed once OpenVINO has compiled it; the same weights asked for again get the same scorer back."""
    if not isinstance(model, CrossEncoder) or model.device.type != "cpu" or not fast_path_available():
        return model
    key = model_fingerprint(model)
    if key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key]
    precision = resolve_precision("auto", "openvino")  # bf16 on this CPU (f32 only where a test forces the path)
    with tempfile.TemporaryDirectory(prefix="fast_reranker_") as folder:
        export_onnx(model, folder)
        # compiled and its tokenizer read: the files can go
        scorer = load_reranker(folder, backend="openvino", precision=precision)
    scorer.weights_fingerprint = f"{key}-openvino-{precision}"
    scorer.runs_on = f"OpenVINO {precision}"  # what a report names (the CLI's evaluate)
    _LOADED[key] = scorer
    while len(_LOADED) > KEPT:
        _LOADED.popitem(last=False)
    return scorer
