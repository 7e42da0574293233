"""The machine's practical matrix-multiply peak, the ceiling a reranker's forward pass works under: GFLOP/s (GOP/s
for int8) of large square GEMMs, the best over sizes and tries, on every core torch or onnxruntime uses here, for
fp32 (the better of torch/MKL and numpy's BLAS), bf16 (torch; fast only where the CPU computes bf16 natively) and
int8 (onnxruntime's MatMulInteger, uint8 x int8, the kernel its dynamic quantisation runs). A measured ceiling, not
the datasheet's: these shared machines' speed moves by tens of percent from minute to minute, so
`benchmarks/inference_speed.py` runs this at the start and at the end of its own run and keeps both.

    .venv/bin/python benchmarks/gemm_peak.py
    .venv/bin/python benchmarks/gemm_peak.py --repeat 3 --out benchmarks/results/gemm_peak.json   # with the machine
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

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
    best_fp32 = 0.0
    for n in (size // 2, size, size * 2):
        a, b = torch.randn(n, n), torch.randn(n, n)
        best_fp32 = max(best_fp32, 2.0 * n**3 / _best(lambda: a @ b) / 1e9)
    a_np = np.random.default_rng(0).random((size, size), dtype=np.float32)
    best_fp32 = max(best_fp32, flops / _best(lambda: a_np @ a_np) / 1e9)
    out = {"fp32_gflops": best_fp32}
    a, b = torch.randn(size, size), torch.randn(size, size)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=1, help="measurements, one after another (default: %(default)s)")
    ap.add_argument("--out", type=Path, help="also write them, with the machine and the time, to this JSON file")
    args = ap.parse_args()
    runs = [measure() for _ in range(args.repeat)]
    if args.out:
        from rerank_utils.models.precision import machine_summary

        args.out.write_text(json.dumps({"at": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_summary(), "runs": runs}, indent=1))
    print(json.dumps(runs[0] if args.repeat == 1 else runs))  # inference_speed.py reads one measurement


if __name__ == "__main__":
    main()
