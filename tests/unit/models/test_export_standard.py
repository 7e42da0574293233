"""Issue 14: a standard cross-encoder (a one-label *ForSequenceClassification model) exported to ONNX scores as
PyTorch does, on onnxruntime, int8 and OpenVINO, through the loader the service and LlamaIndex share."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder

from rerank_utils.models.export import export_backends, export_onnx, quantize_onnx
from rerank_utils.models.loading import load_reranker
from rerank_utils.models.onnx_runtime import OnnxCrossEncoder
from rerank_utils.models.precision import cpu_has_bf16
from tests.extras import dev_extra

dev_extra("onnxruntime")
dev_extra("openvino")
dev_extra("nncf")

QUERIES = ["what is the building permit cost", "who pays the house tax", "roof water law", "a"]
DOCS = ["the building permit cost is a fee", "the house tax is paid by the buyer of the house", "water on the roof",
        "a contract", "what is the law of the roof and the water deduction for a house building permit " * 3]
PAIRS = [(q, d) for q in QUERIES for d in DOCS]


@pytest.fixture(scope="module")
def standard(tiny_bert_dir):
    torch.manual_seed(3)
    return CrossEncoder(str(tiny_bert_dir), max_length=64)


def test_the_export_scores_as_crossencoder_predict_with_its_activation(standard, tmp_path):
    path = export_onnx(standard, tmp_path / "onnx")
    cfg = json.loads((tmp_path / "onnx" / "onnx_config.json").read_text())
    assert path.name == "model.onnx" and cfg["activation"] == "sigmoid" and cfg["max_seq_length"] == 64
    assert cfg["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]  # BERT reads the segment ids
    reference = standard.predict(PAIRS, batch_size=7)  # sigmoid, as CrossEncoder.predict applies it
    logits = standard.predict(PAIRS, batch_size=7, activation_fn=torch.nn.Identity())
    for runtime in ("onnxruntime", "openvino"):
        scorer = OnnxCrossEncoder(tmp_path / "onnx", runtime=runtime)
        ours = scorer.predict(PAIRS, batch_size=3)  # other batches and padding: the same scores
        assert np.abs(ours - reference).max() < 1e-5, runtime
        assert np.abs(scorer.predict(PAIRS, activation_fn=torch.nn.Identity()) - logits).max() < 1e-4, runtime
        for q in range(len(QUERIES)):  # the same order on every query
            rows = slice(q * len(DOCS), (q + 1) * len(DOCS))
            assert list(np.argsort(-ours[rows], kind="stable")) == list(np.argsort(-reference[rows], kind="stable"))
    int8 = quantize_onnx(tmp_path / "onnx")
    q8 = load_reranker(tmp_path / "onnx", backend="onnx", onnx_file=int8.name)
    assert isinstance(q8, OnnxCrossEncoder) and np.abs(q8.predict(PAIRS) - reference).max() < 0.05  # int8 moves scores a little


def test_an_identity_head_stays_raw_and_other_models_are_refused(tiny_bert_dir, tmp_path):
    raw = CrossEncoder(str(tiny_bert_dir), max_length=64, activation_fn=torch.nn.Identity())
    export_onnx(raw, tmp_path / "raw")
    assert json.loads((tmp_path / "raw" / "onnx_config.json").read_text())["activation"] == "identity"
    assert np.abs(load_reranker(tmp_path / "raw", backend="onnx").predict(PAIRS) - raw.predict(PAIRS)).max() < 1e-4
    with pytest.raises(ValueError, match="activation Tanh"):
        export_onnx(CrossEncoder(str(tiny_bert_dir), max_length=64, activation_fn=torch.nn.Tanh()), tmp_path / "tanh")
    with pytest.raises(FileNotFoundError, match="onnx_config.json not found"):
        OnnxCrossEncoder(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="runtime='tvm': choose one of"):
        OnnxCrossEncoder(tmp_path / "raw", runtime="tvm")


def test_every_backend_of_a_standard_cross_encoder(standard, tmp_path):
    models = export_backends(standard, tmp_path / "all", calibration=PAIRS)
    bf16 = cpu_has_bf16()  # the bf16 rows only where the CPU computes bf16 natively
    assert list(models) == ["PyTorch fp32", *(["PyTorch bf16"] if bf16 else []), "ONNX fp32", "ONNX int8", "OpenVINO fp32",
                            *(["OpenVINO bf16"] if bf16 else []), "OpenVINO int8",
                            *(["OpenVINO int8 + bf16"] if bf16 else [])]
    assert (tmp_path / "all" / "openvino_int8.xml").is_file()
    reference = standard.predict(PAIRS)
    assert np.abs(models["ONNX fp32"].predict(PAIRS) - reference).max() < 1e-5
    assert np.abs(models["OpenVINO fp32"].predict(PAIRS) - reference).max() < 1e-5


def test_the_service_serves_a_standard_export_with_the_same_order(standard, tmp_path):
    from rerank_utils.serving.app import load_service

    export_onnx(standard, tmp_path / "onnx")
    service = load_service(str(tmp_path / "onnx"), backend="onnx", cache_size=0)
    try:
        for q in QUERIES:
            raw = np.asarray(service.raw_scores(q, DOCS))  # the service asks every backend for logits
            logits = standard.predict([(q, d) for d in DOCS], activation_fn=torch.nn.Identity())
            assert np.abs(raw - logits).max() < 1e-4
            assert list(np.argsort(-raw, kind="stable")) == list(np.argsort(-logits, kind="stable"))
    finally:
        service.scorer.close()


def test_openvino_bf16_is_asked_for_by_name_and_refused_elsewhere(standard, tmp_path):
    """bf16 is chosen by name (or by precision="auto" where the CPU has it), never by default; onnxruntime refuses it."""
    export_onnx(standard, tmp_path / "onnx")
    reference = standard.predict(PAIRS)
    bf16 = load_reranker(tmp_path / "onnx", backend="openvino", precision="bf16")
    assert np.abs(bf16.predict(PAIRS) - reference).max() < 1e-2  # bf16 keeps about 3 significant digits
    with pytest.raises(ValueError, match="precision='bf16' runs on backend 'torch' \\(autocast\\) or 'openvino'"):
        load_reranker(tmp_path / "onnx", backend="onnx", precision="bf16")
    with pytest.raises(ValueError, match="precision='fp8'"):
        load_reranker(tmp_path / "onnx", backend="openvino", precision="fp8")
