"""The machine's practical matrix-multiply peak, the ceiling a reranker's forward pass works under: GFLOP/s (GOP/s
for int8) of one large GEMM, best of a few, on every core torch or onnxruntime uses here, for fp32 (torch / oneDNN),
bf16 (torch; fast only where the CPU computes bf16 natively) and int8 (onnxruntime's MatMulInteger, uint8 x int8,
the kernel its dynamic quantisation runs). `benchmarks/inference_speed.py` calls :func:`measure` in its own run,
so the fractions of peak it reports compare numbers from one machine.

    .venv/bin/python benchmarks/gemm_peak.py
"""

from __future__ import annotations

import json
import time

import numpy as np

SIZE = 2048  # a square GEMM large enough to reach the kernels' peak, small enough for a second per try


def _best(fn, tries: int = 5) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(tries):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure(size: int = SIZE) -> dict[str, float]:
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    from rerank_utils.models.precision import cpu_has_bf16

    flops = 2.0 * size**3
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = {"fp32_gflops": flops / _best(lambda: a @ b) / 1e9}
    small = size if cpu_has_bf16() else 256  # emulated bf16 runs at well under 1 GFLOP/s: a small GEMM tells it
    a16, b16 = a[:small, :small].bfloat16(), b[:small, :small].bfloat16()
    out["bf16_gflops"] = 2.0 * small**3 / _best(lambda: a16 @ b16, tries=5 if small == size else 1) / 1e9
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "gemm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [size, size]), helper.make_tensor_value_info("B", TensorProto.INT8, [size, size])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"A": rng.integers(0, 255, (size, size), dtype=np.uint8), "B": rng.integers(-128, 127, (size, size), dtype=np.int8)}
    out["int8_gops"] = flops / _best(lambda: session.run(None, feeds)) / 1e9
    out["torch_threads"] = torch.get_num_threads()
    return out


if __name__ == "__main__":
    print(json.dumps(measure(), indent=1))
