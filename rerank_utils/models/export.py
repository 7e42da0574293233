"""Export of a bridge reranker to ONNX (:func:`export_onnx`: dynamic batch and sequence axes, the tokenizer beside
it; a bridge or a standard cross-encoder), its int8 quantisation for onnxruntime (:func:`quantize_onnx`: dynamic) and
for OpenVINO (:func:`quantize_openvino`: NNCF's static post-training quantisation, calibrated on pairs), and
:func:`export_backends`: the reranker on every CPU backend at once. Notebook ``05_deployment``; ``rerank-utils export``.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.models.bridge import BridgeEncoder, bridge_scores, encode_pairs, is_bridge
from rerank_utils.models.calibration import copy_calibration
from rerank_utils.models.loading import load_reranker
from rerank_utils.models.onnx_runtime import STANDARD_CONFIG
from rerank_utils.models.precision import Bf16Autocast, cpu_has_bf16
from rerank_utils.retrieval.dense import DenseRetriever


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


class _ClassifierWrapper(nn.Module):
    """A ``*ForSequenceClassification`` model's logits of the one label, as a function of tensors ONNX can trace."""

    def __init__(self, model: nn.Module, uses_token_types: bool):
        super().__init__()
        self.model, self.uses_token_types = model, uses_token_types

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"token_type_ids": token_type_ids} if self.uses_token_types else {}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits[:, 0]


ACTIVATIONS = {"Sigmoid": "sigmoid", "Identity": "identity"}  # CrossEncoder.activation_fn -> what the ONNX scorer applies


def export_onnx(model, output_dir: str | os.PathLike, opset: int = 17) -> Path:
    """Export a reranker to ``output_dir/model.onnx`` with its tokenizer and config beside it (so the folder is served
    alone); returns the file's path. Dynamic batch and sequence axes.

    * a **bridge** (:func:`~rerank_utils.models.bridge.is_bridge`): its forward pass with the 4D cross-segment mask;
      inputs ``input_ids``, ``attention_mask``, ``position_ids``, ``segment_ids``, output ``scores`` (raw
      ``scale x cosine``); scored by :class:`~rerank_utils.models.onnx_runtime.OnnxBridgeReranker`;
    * a **standard cross-encoder** (a sentence-transformers ``CrossEncoder`` over a one-label
      ``*ForSequenceClassification`` model): inputs ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the
      model reads them), output ``scores`` (the logit), with the model's activation (sigmoid or identity) written to
      ``onnx_config.json`` so :class:`~rerank_utils.models.onnx_runtime.OnnxCrossEncoder` applies it exactly as
      ``CrossEncoder.predict`` does. Exported with ``torch.onnx.export`` (optimum-onnx, which sentence-transformers'
      own ONNX backend needs, does not install beside transformers 5)."""
    if not is_bridge(model):
        return _export_standard(model, Path(output_dir), opset)
    module: BridgeEncoder = model[0]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    module.save_tokenizer(str(out))
    config = {**module.get_config_dict(), "max_segment_length": module.max_segment_length}
    (out / BridgeEncoder.config_file_name).write_text(json.dumps(config, indent=2), encoding="utf-8")
    wrapper = _ExportWrapper(module).cpu().eval()
    sample = encode_pairs(module.tokenizer, [("a query", "a passage of text"), ("q", "another passage")], module.max_seq_length)
    names = ["input_ids", "attention_mask", "position_ids", "segment_ids"]
    return _traced(wrapper, module.model.config, tuple(sample[k] for k in names), names, out, opset)


def _traced(wrapper: nn.Module, config, args: tuple, names: list[str], out: Path, opset: int) -> Path:
    """``torch.onnx.export`` of ``wrapper`` into ``out/model.onnx``: inputs ``names`` with dynamic batch and sequence
    axes, output ``scores``; eager attention while tracing (plain matmul + softmax, which exports everywhere)."""
    path = out / "model.onnx"
    axes = {k: {0: "batch", 1: "sequence"} for k in names} | {"scores": {0: "batch"}}
    attn = config._attn_implementation
    config._attn_implementation = "eager"
    try:
        with torch.no_grad():
            torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=["scores"], dynamic_axes=axes,
                              opset_version=opset, dynamo=False)
    finally:
        config._attn_implementation = attn
    return path


def _export_standard(model, out: Path, opset: int) -> Path:
    first = model[0] if isinstance(model, nn.Sequential) and len(model) else None
    hf = getattr(first, "auto_model", None)
    if hf is None or getattr(hf.config, "num_labels", None) != 1:
        raise TypeError(f"export_onnx: {type(model).__name__} is neither a bridge nor a one-label cross-encoder "
                        f"(a CrossEncoder over a *ForSequenceClassification model with num_labels=1)")
    activation = ACTIVATIONS.get(type(model.activation_fn).__name__)
    if activation is None:
        raise ValueError(f"export_onnx: activation {model.activation_fn!r} is not one the ONNX scorer applies ({', '.join(ACTIVATIONS)})")
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = model.tokenizer
    tokenizer.save_pretrained(str(out))
    sample = tokenizer(["a query", "q"], ["a passage of text", "another passage"], padding=True, truncation=True,
                       max_length=model.max_seq_length, return_tensors="pt")
    uses_token_types = "token_type_ids" in sample and "token_type_ids" in inspect.signature(hf.forward).parameters
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_token_types else [])
    (out / STANDARD_CONFIG).write_text(json.dumps({"kind": "standard", "max_seq_length": model.max_seq_length, "activation": activation,
                                                   "inputs": names}, indent=2), encoding="utf-8")
    return _traced(_ClassifierWrapper(hf, uses_token_types).cpu().eval(), hf.config, tuple(sample[k] for k in names), names, out, opset)


def quantize_onnx(folder: str | os.PathLike, file_name: str = "model_qint8.onnx", per_channel: bool = True) -> Path:
    """Dynamic int8 quantisation (onnxruntime ``quantize_dynamic``, int8 weights, activations quantised at
    run time) of ``folder/model.onnx`` into ``folder/<file_name>``; score it with
    ``OnnxBridgeReranker(folder, file_name=file_name)``. ``per_channel``: one scale per output channel of
    each weight matrix (default), which keeps the scores much closer to fp32 than one scale per matrix
    (``benchmarks/inference_speed.py`` measures both). Measure what it costs in NDCG before using it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # local: the optional [onnx] extra

    folder = Path(folder)
    if not (folder / "model.onnx").is_file():
        raise FileNotFoundError(f"{folder}/model.onnx not found: export it with rerank_utils.models.export.export_onnx first")
    out = folder / file_name
    quantize_dynamic(str(folder / "model.onnx"), str(out), weight_type=QuantType.QInt8, per_channel=per_channel)
    return out


OPENVINO_INT8 = "openvino_int8.xml"


def calibration_pairs(split: RetrievalDataset, bi_encoder, queries: int = 32, top_k: int = 20) -> list[tuple[str, str]]:
    """``(query, passage)`` pairs like those a reranker scores in service: the first ``queries`` queries of ``split``
    (a training or validation split, never the test one) with their ``top_k`` candidates from ``bi_encoder``: what
    :func:`quantize_openvino` calibrates on."""
    qids = list(split.queries)[:queries]
    run = DenseRetriever(split.corpus, bi_encoder).search({q: split.queries[q] for q in qids}, top_k=top_k)
    return [(split.queries[q], split.corpus[d]) for q in qids for d in run[q]]


def quantize_openvino(folder: str | os.PathLike, calibration_pairs, file_name: str = OPENVINO_INT8, batch_size: int = 32,
                      max_batches: int = 32) -> Path:
    """Static int8 quantisation of ``folder/model.onnx`` for OpenVINO with NNCF (``nncf.quantize``, transformer
    preset: int8 weights AND activations, their ranges calibrated on ``calibration_pairs``) into ``folder/<file_name>``
    (``.xml`` + ``.bin``); load it with ``load_reranker(folder, backend="openvino", onnx_file=file_name)``.
    Calibrate on pairs like those it will score (training or validation queries with their retrieved candidates),
    never on the test split; at most ``max_batches`` batches of ``batch_size`` are used. Measure the NDCG it costs
    (``benchmarks/inference_speed.py``) before serving it. Needs ``pip install -e '.[openvino]'`` (NNCF)."""
    try:
        import nncf  # local: the optional [openvino] extra
        import openvino as ov
    except ImportError as exc:
        raise ImportError("quantize_openvino needs OpenVINO and NNCF: pip install -e '.[openvino]'") from exc

    folder = Path(folder)
    pairs = [tuple(p) for p in calibration_pairs]
    if not pairs:
        raise ValueError("quantize_openvino: calibration_pairs is empty; pass a few hundred (query, passage) pairs")
    scorer = load_reranker(folder, backend="openvino")  # its tokenisation is the one the model will be fed
    pairs.sort(key=lambda p: len(p[0]) + len(p[1]))
    batches = [pairs[i: i + batch_size] for i in range(0, len(pairs), batch_size)][:max_batches]
    core = ov.Core()
    quantized = nncf.quantize(core.read_model(str(folder / "model.onnx")), nncf.Dataset(batches, scorer.features),
                              model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches))
    out = folder / file_name
    ov.save_model(quantized, str(out))
    return out


def export_backends(reranker, folder: str | os.PathLike, quantize: bool = True, calibration: list[tuple[str, str]] | None = None,
                    model_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The reranker on every CPU backend it can be served on, by label, PyTorch fp32 first: exported to ``folder``
    (:func:`export_onnx`) and loaded back through :func:`~rerank_utils.models.loading.load_reranker` on onnxruntime
    (fp32; with ``quantize`` int8, :func:`quantize_onnx`) and OpenVINO when installed (fp32; with ``quantize`` and
    ``calibration`` pairs (:func:`calibration_pairs`) NNCF's int8, :func:`quantize_openvino`); the bf16 rows (PyTorch
    autocast, OpenVINO, OpenVINO int8 + bf16) only on a CPU that computes bf16 natively. A bridge or a standard cross-encoder alike.
    ``model_dir``: the folder ``reranker`` was loaded from, whose ``calibration.json`` the export carries.
    Notebook ``05_deployment``'s table."""
    bf16 = cpu_has_bf16()
    models: dict[str, Any] = {"PyTorch fp32": reranker, **({"PyTorch bf16": Bf16Autocast(reranker)} if bf16 else {})}
    export_onnx(reranker, folder)
    if model_dir is not None:
        copy_calibration(model_dir, folder)
    models["ONNX fp32"] = load_reranker(folder, backend="onnx")
    if quantize:
        quantize_onnx(folder)
        models["ONNX int8"] = load_reranker(folder, backend="onnx", onnx_file="model_qint8.onnx")
    if importlib.util.find_spec("openvino"):
        models["OpenVINO fp32"] = load_reranker(folder, backend="openvino")
        if bf16:
            models["OpenVINO bf16"] = load_reranker(folder, backend="openvino", precision="bf16")
        if quantize and calibration and importlib.util.find_spec("nncf"):
            quantize_openvino(folder, calibration)
            models["OpenVINO int8"] = load_reranker(folder, backend="openvino", onnx_file=OPENVINO_INT8)
            if bf16:  # what NNCF leaves in fp32 (softmax, layer norms, GELU) in bf16: the fastest CPU row of issue 14
                models["OpenVINO int8 + bf16"] = load_reranker(folder, backend="openvino", onnx_file=OPENVINO_INT8, precision="bf16")
    return models
