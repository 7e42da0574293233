""":class:`OnnxBridgeReranker`: an exported bridge reranker scored by onnxruntime or OpenVINO, with the model folder's
tokenizer; ``predict`` has ``CrossEncoder.predict``'s signature, so the service, LlamaIndex and the notebooks use
it where they use the PyTorch model.
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
                 file_name: str = "model.onnx", runtime: str = "onnxruntime"):
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
        if runtime == "onnxruntime":
            import onnxruntime as ort  # local: the optional [onnx] extra

            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            session = ort.InferenceSession(str(folder / file_name), opts, providers=["CPUExecutionProvider"])
            self._run = lambda feeds: session.run(["scores"], feeds)[0]
        else:
            try:
                import openvino as ov  # local: the optional [openvino] extra
            except ImportError as exc:
                raise ImportError("runtime='openvino' needs OpenVINO: pip install -e '.[openvino]'") from exc
            config = {"INFERENCE_NUM_THREADS": threads} if threads else {}
            compiled = ov.Core().compile_model(str(folder / file_name), "CPU", config)
            output = compiled.output("scores")
            self._run = lambda feeds: compiled(feeds)[output]

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32, **_: Any):
        pairs = list(pairs)
        order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
        scores = np.empty(len(pairs), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            feats = encode_pairs(self.tokenizer, [pairs[i] for i in idx], self.max_seq_length, self.max_segment_length)
            scores[idx] = self._run({k: v.numpy() for k, v in feats.items()}).reshape(-1)
        return scores
