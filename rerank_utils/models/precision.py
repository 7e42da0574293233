"""Half precision on the CPU, detected rather than assumed: :func:`cpu_has_bf16` (does this processor compute bf16
natively: AVX512-BF16 or AMX), :func:`resolve_precision` (``"auto"`` -> ``"bf16"`` there, ``"f32"`` elsewhere),
:class:`Bf16Autocast` (a PyTorch reranker's ``predict`` under ``torch.autocast``) and :func:`machine_summary` (what a
benchmark records of the machine it ran on). The same code runs on machines with and without the instructions:
on a CPU without them bf16 is emulated and slower than fp32, so ``"auto"`` keeps fp32 there.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from rerank_utils.cpu_info import cpu_flags, cpu_model_name

PRECISIONS = ("f32", "bf16", "auto")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8")


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively: OpenVINO's own view (``OPTIMIZATION_CAPABILITIES`` lists ``BF16``)
    where OpenVINO is installed, else the AVX512-BF16 / AMX-BF16 flags of ``/proc/cpuinfo``."""
    if importlib.util.find_spec("openvino"):
        import openvino as ov  # local: the optional [openvino] extra

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return bool(cpu_flags() & set(BF16_FLAGS))


def resolve_precision(precision: str, backend: str) -> str:
    """``"f32"`` or ``"bf16"`` for ``backend`` (``"torch"``, ``"onnx"``, ``"openvino"``): ``"auto"`` is bf16 where the
    CPU has it natively and the backend can use it (PyTorch autocast, OpenVINO), fp32 otherwise; ``"bf16"`` on
    onnxruntime is refused (its CPU provider has no bf16 kernels for these models)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if backend in ("torch", "openvino") and cpu_has_bf16() else "f32"
    if precision == "bf16" and backend == "onnx":
        raise ValueError("precision='bf16' runs on backend 'torch' (autocast) or 'openvino'; onnxruntime computes in f32 or int8")
    return precision


class Bf16Autocast:
    """A PyTorch reranker whose ``predict`` runs under ``torch.autocast(device, bfloat16)`` (matrix products in bf16,
    the rest in fp32) and returns float32 scores; every other attribute is the wrapped model's."""

    def __init__(self, model: Any):
        self.model = model
        self.device_type = getattr(getattr(model, "device", None), "type", "cpu")

    def predict(self, *args: Any, **kwargs: Any):
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            scores = self.model.predict(*args, **kwargs)
        return scores.float() if isinstance(scores, torch.Tensor) else np.asarray(scores, dtype=np.float32)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def machine_summary() -> dict[str, Any]:
    """The processor a measurement ran on: model name, cores, the SIMD flags that decide which precisions pay, and
    whether bf16 is native (benchmarks record it beside their ratios, since these shared machines differ)."""
    flags = cpu_flags()
    return {"cpu": cpu_model_name(), "cores": os.cpu_count(), "flags": [f for f in REPORTED_FLAGS if f in flags], "bf16_native": cpu_has_bf16(),
            "torch_threads": torch.get_num_threads()}
