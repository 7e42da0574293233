"""Issue 14: OpenVINO int8 by NNCF's static quantisation, for both architectures: calibrated on pairs, saved as
OpenVINO's .xml beside the ONNX export, loaded by the one loader, and ordering like the fp32 model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder

from rerank_utils.models.bridge import build_bridge_reranker
from rerank_utils.models.export import OPENVINO_INT8, export_onnx, quantize_openvino
from rerank_utils.models.loading import load_reranker
from rerank_utils.models.onnx_runtime import OnnxBridgeReranker, OnnxCrossEncoder
from tests.extras import dev_extra

dev_extra("openvino")
dev_extra("nncf")

WORDS = "building permit cost fee house tax buyer roof water law contract deduction the a of is on paid by".split()


def pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    return [(" ".join(rng.choice(WORDS, size=rng.integers(2, 6))), " ".join(rng.choice(WORDS, size=rng.integers(5, 30))))
            for _ in range(n)]


@pytest.mark.parametrize("architecture", ["standard", "bridge"])
def test_openvino_int8_scores_close_to_fp32(tiny_bert_dir, tmp_path, architecture):
    torch.manual_seed(3)
    if architecture == "standard":
        model = CrossEncoder(str(tiny_bert_dir), max_length=64, activation_fn=torch.nn.Identity())
    else:
        model = build_bridge_reranker(str(tiny_bert_dir), bias_mode="head", bias_start=-2.0, max_seq_length=64)
    export_onnx(model, tmp_path / "onnx")
    path = quantize_openvino(tmp_path / "onnx", pairs(96, seed=0), batch_size=16)  # calibration pairs
    assert path.name == OPENVINO_INT8 and path.with_suffix(".bin").is_file()
    assert path.with_suffix(".bin").stat().st_size < (tmp_path / "onnx" / "model.onnx").stat().st_size / 2  # int8 weights
    scorer = load_reranker(tmp_path / "onnx", backend="openvino", onnx_file=OPENVINO_INT8)
    assert isinstance(scorer, OnnxCrossEncoder if architecture == "standard" else OnnxBridgeReranker)
    test = pairs(60, seed=1)  # other pairs than the calibration's
    reference = np.asarray(model.predict(test))
    int8 = scorer.predict(test, batch_size=8)
    assert int8.shape == reference.shape
    if architecture == "bridge":  # scale x cosine: scores that spread, int8 keeps them to 1% and their order
        assert np.abs(int8 - reference).max() < 0.01 * (reference.max() - reference.min())
        assert np.corrcoef(int8, reference)[0, 1] > 0.999
    else:  # a random tiny encoder's CLS hardly varies, so int8's noise is large next to it: the packaged model's
        # real encoder is checked in tests/integration/test_export_packaged.py
        assert np.corrcoef(int8, reference)[0, 1] > 0.5
    with pytest.raises(ValueError, match="is an OpenVINO model: load it with backend='openvino'"):
        load_reranker(tmp_path / "onnx", backend="onnx", onnx_file=OPENVINO_INT8)


def test_calibration_needs_pairs(tiny_bert_dir, tmp_path):
    export_onnx(CrossEncoder(str(tiny_bert_dir), max_length=64), tmp_path / "onnx")
    with pytest.raises(ValueError, match="calibration_pairs is empty"):
        quantize_openvino(tmp_path / "onnx", [])
