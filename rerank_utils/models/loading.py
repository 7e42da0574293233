"""Loading models by name or folder, offline first: :func:`load_bi_encoder`, :func:`load_cross_encoder` (a standard
cross-encoder or a bridge folder) and :func:`load_reranker`, the one loader of every backend (torch, onnx,
openvino) that the service, the LlamaIndex postprocessor and the notebooks use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sentence_transformers import CrossEncoder, SentenceTransformer
from transformers.utils import logging as hf_logging

from rerank_utils.models.bridge import is_bridge_folder
from rerank_utils.models.onnx_runtime import (
    STANDARD_CONFIG,
    OnnxBridgeReranker,
    OnnxCrossEncoder,
)
from rerank_utils.models.precision import Bf16Autocast, resolve_precision
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
    A folder holding a saved bridge reranker (:mod:`rerank_utils.models.bridge`) loads as one.
    """
    resolved = resolve_model(name)

    if model_kind(name) == "local" and is_bridge_folder(resolved):
        # a saved bridge reranker (rerank_utils.models.bridge): its module class is this package's own code
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


BACKENDS = ("torch", "onnx", "openvino")


def load_reranker(model: str | os.PathLike, backend: str = "torch", device: str | None = None, onnx_file: str = "model.onnx",
                  precision: str = "f32") -> Any:
    """A reranker with ``CrossEncoder.predict``'s signature, whatever runs it: ``backend="torch"`` loads a model folder
    or name (a standard cross-encoder or a bridge) with :func:`load_cross_encoder`; ``"onnx"`` and ``"openvino"``
    load an export folder of either architecture (:func:`rerank_utils.models.export.export_onnx`;
    ``onnx_file="model_qint8.onnx"`` for onnxruntime's int8 model, ``"openvino_int8.xml"`` for NNCF's) on onnxruntime
    or OpenVINO. ``precision`` (:mod:`rerank_utils.models.precision`): ``"f32"`` (default, exact), ``"bf16"``
    (PyTorch autocast or OpenVINO's bf16 inference) or ``"auto"`` (bf16 where the CPU computes it natively, f32
    elsewhere). The one loader the service, the LlamaIndex postprocessor and the notebooks share."""
    precision = resolve_precision(precision, backend)  # refuses an unknown precision first
    if backend == "torch":
        model = load_cross_encoder(str(model), device=device)
        return Bf16Autocast(model) if precision == "bf16" else model
    if backend in ("onnx", "openvino"):
        if not (Path(model) / onnx_file).is_file():
            raise FileNotFoundError(f"backend={backend!r}: {Path(model) / onnx_file} not found "
                                    f"(export the model first: rerank-utils export, or rerank_utils.models.export.export_onnx)")
        runtime = "onnxruntime" if backend == "onnx" else "openvino"
        if (Path(model) / STANDARD_CONFIG).is_file():  # a standard cross-encoder's export
            return OnnxCrossEncoder(model, file_name=onnx_file, runtime=runtime, precision=precision)
        return OnnxBridgeReranker(model, file_name=onnx_file, runtime=runtime, precision=precision)
    raise ValueError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}")
