"""Export of a bridge reranker to ONNX (:func:`export_onnx`: dynamic batch and sequence axes, the tokenizer beside
it), its int8 dynamic quantisation (:func:`quantize_onnx`), and :func:`export_backends`: the reranker on every CPU
backend at once. Notebook ``05_deployment``; ``rerank-utils export``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rerank_utils.models.bridge import (
    BridgeEncoder,
    bridge_scores,
    encode_pairs,
    is_bridge,
)
from rerank_utils.models.loading import load_reranker


# ------------------------------------------------------------------------------------------- ONNX
class _ExportWrapper(nn.Module):
    def __init__(self, module: BridgeEncoder):
        super().__init__()
        self.module = module

    def forward(self, input_ids, attention_mask, position_ids, segment_ids):
        m = self.module
        return bridge_scores(
            m.model, m.cross_bias, m.scale, input_ids, attention_mask, position_ids, segment_ids, m.position_offset, m.pooling
        )


def export_onnx(model, output_dir: str | os.PathLike, opset: int = 17) -> Path:
    """Export a bridge reranker's forward pass (its 4D cross-segment mask included) to
    ``output_dir/model.onnx`` with the tokenizer and config beside it; returns the file's path.

    Inputs ``input_ids``, ``attention_mask``, ``position_ids``, ``segment_ids`` (``[batch, seq]``, int64),
    output ``scores`` (``[batch]``, the raw ``scale x cosine``). Score with :class:`~rerank_utils.models.onnx_runtime.OnnxBridgeReranker`."""
    if not is_bridge(model):
        raise TypeError("export_onnx: not a bridge reranker (export a standard cross-encoder with optimum)")
    module: BridgeEncoder = model[0]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    module.save_tokenizer(str(out))
    module.save_config(str(out))
    cfg_path = out / BridgeEncoder.config_file_name
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text(encoding="utf-8")), "max_segment_length": module.max_segment_length}, indent=2), encoding="utf-8")
    wrapper = _ExportWrapper(module).cpu().eval()
    sample = encode_pairs(module.tokenizer, [("a query", "a passage of text"), ("q", "another passage")], module.max_seq_length)
    args = tuple(sample[k] for k in ("input_ids", "attention_mask", "position_ids", "segment_ids"))
    axes = {k: {0: "batch", 1: "sequence"} for k in ("input_ids", "attention_mask", "position_ids", "segment_ids")}
    axes["scores"] = {0: "batch"}
    path = out / "model.onnx"
    attn = module.model.config._attn_implementation
    module.model.config._attn_implementation = "eager"  # plain matmul + softmax export everywhere
    try:
        with torch.no_grad():
            torch.onnx.export(
                wrapper, args, str(path), input_names=list(axes)[:4], output_names=["scores"],
                dynamic_axes=axes, opset_version=opset, dynamo=False,
            )
    finally:
        module.model.config._attn_implementation = attn
    return path


def quantize_onnx(folder: str | os.PathLike, file_name: str = "model_qint8.onnx", per_channel: bool = True) -> Path:
    """Dynamic int8 quantisation (onnxruntime ``quantize_dynamic``, int8 weights, activations quantised at
    run time) of ``folder/model.onnx`` into ``folder/<file_name>``; score it with
    ``OnnxBridgeReranker(folder, file_name=file_name)``. ``per_channel``: one scale per output channel of
    each weight matrix (default), which keeps the scores much closer to fp32 than one scale per matrix
    (``benchmarks/inference_speed.py`` measures both). Measure what it costs in NDCG before using it."""
    from onnxruntime.quantization import (  # local: the optional [onnx] extra
        QuantType,
        quantize_dynamic,
    )

    folder = Path(folder)
    if not (folder / "model.onnx").is_file():
        raise FileNotFoundError(f"{folder}/model.onnx not found: export it with rerank_utils.models.export.export_onnx first")
    out = folder / file_name
    quantize_dynamic(str(folder / "model.onnx"), str(out), weight_type=QuantType.QInt8, per_channel=per_channel)
    return out


def export_backends(reranker, folder: str | os.PathLike, quantize: bool = True) -> dict[str, Any]:
    """The reranker on every CPU backend it can be served on, by label, PyTorch first: a bridge is exported to
    ``folder`` (:func:`export_onnx`, with ``quantize`` also :func:`quantize_onnx`) and loaded back through
    :func:`~rerank_utils.models.loading.load_reranker` on onnxruntime (fp32, int8) and OpenVINO (when installed). A
    standard cross-encoder stays PyTorch only (its ONNX export is issue 14's). Notebook ``05_deployment``'s table."""
    models: dict[str, Any] = {"PyTorch fp32": reranker}
    if not is_bridge(reranker):
        return models
    export_onnx(reranker, folder)
    models["ONNX fp32"] = load_reranker(folder, backend="onnx")
    if quantize:
        quantize_onnx(folder)
        models["ONNX int8"] = load_reranker(folder, backend="onnx", onnx_file="model_qint8.onnx")
    if importlib.util.find_spec("openvino"):
        models["OpenVINO fp32"] = load_reranker(folder, backend="openvino")
    return models
