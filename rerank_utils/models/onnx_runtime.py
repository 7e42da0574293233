"""Exported rerankers scored by onnxruntime or OpenVINO with their folder's tokenizer: :class:`OnnxBridgeReranker`
(a bridge) and :class:`OnnxCrossEncoder` (a standard cross-encoder). Their ``predict`` has ``CrossEncoder.predict``'s
signature, so the service, LlamaIndex and the notebooks use them where they use the PyTorch model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from transformers import AutoTokenizer

from rerank_utils.models.bridge import BridgeEncoder, encode_pairs


class OnnxBridgeReranker:
    """Scores pairs with an exported bridge (``model.onnx`` + tokenizer, or ``file_name``, e.g. the int8 model
    of :func:`~rerank_utils.models.export.quantize_onnx`) with the same ``predict(pairs, batch_size)`` shape as ``CrossEncoder.predict``
    (raw ``scale x cosine`` scores). ``runtime``: ``"onnxruntime"`` (default) or ``"openvino"`` (OpenVINO reads
    the same ONNX file; ``pip install -e '.[openvino]'``)."""
    RUNTIMES = ("onnxruntime", "openvino")

    def __init__(self, folder: str | os.PathLike, max_seq_length: int | None = None, threads: int | None = None,
                 file_name: str = "model.onnx", runtime: str = "onnxruntime", precision: str = "f32"):
        if runtime not in self.RUNTIMES:
            raise ValueError(f"runtime={runtime!r}: choose one of {self.RUNTIMES}")
        folder = Path(folder)
        if not (folder / file_name).is_file():
            raise FileNotFoundError(f"{folder}/{file_name} not found: export it with rerank_utils.models.export.export_onnx")
        cfg = json.loads((folder / BridgeEncoder.config_file_name).read_text(encoding="utf-8"))
        self.max_seq_length = int(max_seq_length or cfg["max_seq_length"])
        self.max_segment_length = cfg.get("max_segment_length")
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.runtime = runtime
        self._run = _session(folder / file_name, runtime, threads, precision)

    def features(self, pairs: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
        """The model's inputs for ``pairs``, padded on the right to their longest (what
        :func:`~rerank_utils.models.export.quantize_openvino` calibrates on)."""
        feats = encode_pairs(self.tokenizer, list(pairs), self.max_seq_length, self.max_segment_length)
        return {k: v.numpy() for k, v in feats.items()}

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32, **_: Any):
        return _scores_by_length(self, pairs, batch_size)


STANDARD_CONFIG = "onnx_config.json"  # beside a standard cross-encoder's model.onnx: its inputs, length and activation


class OnnxCrossEncoder:
    """Scores pairs with an exported standard cross-encoder (``model.onnx``, or ``file_name`` such as the int8
    ``model_qint8.onnx``, with the tokenizer and ``onnx_config.json`` beside it) with ``CrossEncoder.predict``'s
    signature: the activation the model was exported with (sigmoid or identity) is applied unless ``activation_fn``
    says otherwise (``torch.nn.Identity()`` gives the logits, as the service asks). Pairs are sorted by token count and
    padded per batch (less padding, the same scores), and returned in the order given. ``runtime``: onnxruntime
    or OpenVINO."""
    RUNTIMES = ("onnxruntime", "openvino")

    def __init__(self, folder: str | os.PathLike, file_name: str = "model.onnx", runtime: str = "onnxruntime",
                 threads: int | None = None, precision: str = "f32"):
        if runtime not in self.RUNTIMES:
            raise ValueError(f"runtime={runtime!r}: choose one of {self.RUNTIMES}")
        folder = Path(folder)
        if not (folder / file_name).is_file() or not (folder / STANDARD_CONFIG).is_file():
            raise FileNotFoundError(f"{folder}/{file_name} or {STANDARD_CONFIG} not found: export it with rerank_utils.models.export.export_onnx")
        cfg = json.loads((folder / STANDARD_CONFIG).read_text(encoding="utf-8"))
        self.max_seq_length, self.activation, self.inputs = int(cfg["max_seq_length"]), cfg["activation"], list(cfg["inputs"])
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.runtime = runtime
        self._run = _session(folder / file_name, runtime, threads, precision)

    def features(self, pairs: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
        """The model's inputs for ``pairs``, padded on the right to their longest."""
        feats = self.tokenizer([p[0] for p in pairs], [p[1] for p in pairs], padding=True, truncation=True,
                               max_length=self.max_seq_length, return_tensors="np", padding_side="right")
        return {k: feats[k].astype(np.int64) for k in self.inputs}

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32, show_progress_bar: bool = False,
                activation_fn: Any = None, **_: Any) -> np.ndarray:
        logits = _scores_by_length(self, pairs, batch_size)
        if activation_fn is not None:  # a torch activation, as CrossEncoder.predict takes it
            import torch  # local: only when a caller passes a torch activation

            return activation_fn(torch.from_numpy(logits)).numpy()
        return 1.0 / (1.0 + np.exp(-logits)) if self.activation == "sigmoid" else logits


CHUNK_PAIRS = 1024  # pairs tokenised at once: bounds the padded arrays of a large request (10,000 x 512 tokens)


def _scores_by_length(scorer, pairs: Sequence[tuple[str, str]], batch_size: int) -> np.ndarray:
    """``scorer``'s raw scores of ``pairs`` in the order given. Each chunk of :data:`CHUNK_PAIRS` pairs is tokenised in
    one call, its pairs sorted by their TOKEN count (longest first) and cut into batches padded to the batch's longest
    (``features`` pads on the right, so a batch is its rows' first ``width`` columns). Sorting by tokens rather than
    characters, as ``CrossEncoder.predict`` does, leaves almost no padding: on the FAQ's test top-20 at batch 32, 70
    tokens computed per pair against 88 (69 real; ``benchmarks/inference_speed.py``, ``_run.cost``). The scores are the
    same, padding being masked."""
    pairs = list(pairs)
    scores = np.empty(len(pairs), dtype=np.float32)
    for first in range(0, len(pairs), CHUNK_PAIRS):
        feats = scorer.features(pairs[first: first + CHUNK_PAIRS])
        lengths = feats["attention_mask"].sum(axis=1)
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            width = int(lengths[idx[0]])
            batch = {k: np.ascontiguousarray(v[idx, :width]) for k, v in feats.items()}
            scores[first + idx] = scorer._run(batch).reshape(-1)
    return scores


def _session(path: Path, runtime: str, threads: int | None, precision: str = "f32"):
    """``feeds -> scores`` on onnxruntime or OpenVINO for the model file at ``path`` (ONNX; OpenVINO also reads its
    own ``.xml``), ``precision``: OpenVINO's inference precision, ``"f32"`` or ``"bf16"``."""
    if path.suffix == ".xml" and runtime != "openvino":
        raise ValueError(f"{path.name} is an OpenVINO model: load it with backend='openvino' (runtime='openvino')")
    if runtime == "onnxruntime":
        import onnxruntime as ort  # local: the optional [onnx] extra

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return lambda feeds: session.run(["scores"], feeds)[0]
    try:
        import openvino as ov  # local: the optional [openvino] extra
    except ImportError as exc:
        raise ImportError("runtime='openvino' needs OpenVINO: pip install -e '.[openvino]'") from exc
    # OpenVINO's CPU plugin computes in bf16 by default on a CPU with native bf16 (AVX512-BF16, AMX): fp32 unless
    # asked, so "OpenVINO fp32" is what it says and its scores match PyTorch's to 1e-5. An .xml model (NNCF's int8,
    # quantize_openvino) is read as well as an .onnx one.
    config = {"INFERENCE_PRECISION_HINT": precision, **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    output = compiled.output("scores")
    return lambda feeds: compiled(feeds)[output]
