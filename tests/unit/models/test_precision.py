"""Issue 14: half precision detected, not assumed: ``precision="auto"`` is bf16 only where the CPU computes it
natively, and a PyTorch reranker in bf16 autocast scores as its fp32 self to bf16's rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder

from rerank_utils.cpu_info import cpu_flags, cpu_model_name
from rerank_utils.models import precision
from rerank_utils.models.loading import load_reranker
from rerank_utils.models.precision import (
    BF16_FLAGS,
    Bf16Autocast,
    cpu_has_bf16,
    machine_summary,
    resolve_precision,
)

PAIRS = [("what is the building permit cost", "the building permit cost is a fee"), ("roof water law", "water on the roof"),
         ("who pays the house tax", "a contract between the buyer and the seller of a house " * 4)]


def test_cpu_flags_are_read_from_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "sse2", "avx2", "avx512f", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()
    assert cpu_model_name(info) == "Some CPU" and cpu_model_name(tmp_path / "missing")  # platform's name as a fallback


def test_the_two_detections_agree_on_this_machine():
    """OpenVINO's OPTIMIZATION_CAPABILITIES and the kernel's flags must say the same about native bf16."""
    assert cpu_has_bf16() == bool(cpu_flags() & set(BF16_FLAGS))
    summary = machine_summary()
    assert summary["bf16_native"] == cpu_has_bf16() and summary["cores"] >= 1 and summary["cpu"]


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_only_where_the_cpu_has_it(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: native)
    assert resolve_precision("auto", "openvino") == ("bf16" if native else "f32")
    assert resolve_precision("auto", "torch") == ("bf16" if native else "f32")
    assert resolve_precision("auto", "onnx") == "f32"  # onnxruntime has no bf16 path for these models
    assert resolve_precision("f32", "torch") == "f32" and resolve_precision("bf16", "torch") == "bf16"


def test_bad_precisions_are_refused_by_name():
    with pytest.raises(ValueError, match="precision='fp8': choose one of f32, bf16, auto"):
        resolve_precision("fp8", "torch")
    with pytest.raises(ValueError, match="onnxruntime computes in f32 or int8"):
        resolve_precision("bf16", "onnx")


def test_torch_bf16_autocast_scores_as_fp32_to_bf16_rounding(tiny_bert_dir, monkeypatch):
    torch.manual_seed(3)
    model = CrossEncoder(str(tiny_bert_dir), max_length=64)
    reference = model.predict(PAIRS)
    wrapped = Bf16Autocast(model)
    scores = wrapped.predict(PAIRS)
    assert scores.dtype == np.float32 and scores.shape == reference.shape
    assert np.abs(scores - reference).max() < 2e-2  # bf16 keeps about 3 significant digits
    assert wrapped.max_length == model.max_length  # every other attribute is the model's
    # the loader wraps a PyTorch model for bf16 and for "auto" on a bf16 CPU, never for f32
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert isinstance(load_reranker(tiny_bert_dir, backend="torch", precision="auto"), Bf16Autocast)
    assert not isinstance(load_reranker(tiny_bert_dir, backend="torch", precision="f32"), Bf16Autocast)
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert not isinstance(load_reranker(tiny_bert_dir, backend="torch", precision="auto"), Bf16Autocast)


def test_the_cli_offers_the_loaders_precisions():
    from rerank_utils.cli.main import _build_parser

    serve = _build_parser()._subparsers._group_actions[0].choices["serve"]
    choices = next(a.choices for a in serve._actions if "--precision" in a.option_strings)
    assert tuple(choices) == precision.PRECISIONS
