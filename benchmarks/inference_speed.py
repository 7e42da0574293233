"""Reranking speed-ups side by side, one run, the same data, for BOTH architectures notebook 03 trains on the `cpu`
profile (artifacts/cpu/models/bridge and artifacts/cpu/models/standard): each on PyTorch fp32 (the baseline, at
several batch sizes), exported to ONNX (fp32), ONNX with int8 dynamic quantisation, and the ONNX files on
OpenVINO's runtime (`pip install -e '.[openvino]'`) in fp32 and in bf16 (OpenVINO's own default on a CPU with
AVX512-BF16). Ratios are to the same architecture's PyTorch fp32 in the same run.

For each: pairs/s over every test query's bi-encoder top-20 in one `predict` call, latency per query
(p50 / p95, one `predict` per query) for the top-20 and the top-100, peak resident memory (each variant in
its own process), and NDCG@10 of the reranked top-20 on the 99 test queries against the fp32 baseline.
FP16 is for GPUs (on a CPU it is slower); it is not measured on this machine. Both architectures are
exported by `rerank_utils.models.export.export_onnx` (sentence-transformers' own `backend="onnx"` needs
optimum-onnx, which requires transformers < 4.58; this stack has transformers 5).

    .venv/bin/python benchmarks/inference_speed.py                       # run 03 on the cpu profile first
    .venv/bin/python benchmarks/inference_speed.py --architecture standard --latency-queries 20
    .venv/bin/python benchmarks/inference_speed.py --variants bf16 --out benchmarks/results/inference_speed_bf16.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "inference_speed.json"
VARIANTS = {
    "PyTorch fp32, batch 32 (baseline)": ("torch", 32),
    "PyTorch fp32, batch 8": ("torch", 8),
    "PyTorch fp32, batch 128": ("torch", 128),
    "PyTorch bf16 autocast, batch 32": ("torch-bf16", 32),
    "ONNX fp32, batch 32": ("onnx", 32),
    "ONNX int8 dynamic per-channel, batch 32": ("onnx-int8", 32),
    "ONNX int8 dynamic per-tensor, batch 32": ("onnx-int8pt", 32),
    "OpenVINO fp32, batch 32": ("openvino", 32),
    "OpenVINO bf16 (its CPU default here), batch 32": ("openvino-bf16", 32),
    "OpenVINO on the int8 per-channel ONNX, batch 32": ("openvino-int8", 32),
}
ARCHITECTURES = ("bridge", "standard")
ONNX_ROOT = Path("/tmp/inference_speed")


def child(architecture: str, kind: str, batch: int, latency_queries: int) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np

    from rerank_utils.data.saved_splits import prepare_splits
    from rerank_utils.evaluation.metrics import evaluate_run
    from rerank_utils.models.loading import load_bi_encoder, load_cross_encoder
    from rerank_utils.models.onnx_runtime import OnnxBridgeReranker, OnnxCrossEncoder
    from rerank_utils.paths import artifacts_dir
    from rerank_utils.retrieval.dense import DenseRetriever
    from rerank_utils.retrieval.reranking import rerank_run

    splits = prepare_splits("cpu", "faq-en", seed=42)
    test = splits["test"]
    dense = DenseRetriever(test.corpus, load_bi_encoder("default"))
    run20 = dense.search(test.queries, top_k=20)
    run100 = dense.search(test.queries, top_k=100)
    if kind.startswith("torch"):
        model = load_cross_encoder(str(artifacts_dir("cpu", "models", architecture, create=False)), device="cpu")
    else:
        file_name = {"int8": "model_qint8.onnx", "int8pt": "model_qint8_per_tensor.onnx"}.get(kind.split("-")[-1], "model.onnx")
        scorer = OnnxBridgeReranker if architecture == "bridge" else OnnxCrossEncoder
        model = scorer(ONNX_ROOT / architecture, file_name=file_name, runtime="openvino" if kind.startswith("openvino") else "onnxruntime",
                       precision="bf16" if kind.endswith("bf16") else "f32")
    if kind == "torch-bf16":  # autocast: matmuls in bf16 (AVX512-BF16 here), the rest in fp32
        import torch

        class _Autocast:
            def __init__(self, inner):
                self.inner = inner

            def predict(self, *a, **kw):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return np.asarray(self.inner.predict(*a, **kw), dtype=np.float32)

        model = _Autocast(model)
    t0 = time.perf_counter()
    reranked = rerank_run(model, test, run20, top_k=20, batch_size=batch)
    seconds = time.perf_counter() - t0
    pairs = sum(len(v) for v in reranked.values())
    ndcg = evaluate_run(reranked, test.qrels, ["ndcg@10"]).aggregate["ndcg@10"]
    latency = {}
    qids = list(test.queries)[:latency_queries]
    for k, run in ((20, run20), (100, run100)):
        times = []
        for q in qids:
            docs = list(run[q])[:k]
            t = time.perf_counter()
            model.predict([(test.queries[q], test.corpus[d]) for d in docs], batch_size=batch, show_progress_bar=False)
            times.append(time.perf_counter() - t)
        latency[f"top{k}_p50_ms"] = float(np.percentile(times, 50) * 1000)
        latency[f"top{k}_p95_ms"] = float(np.percentile(times, 95) * 1000)
    return {"pairs": pairs, "seconds": seconds, "pairs_per_s": pairs / seconds, "ndcg@10": ndcg, **latency,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def prepare_onnx(architecture: str) -> None:
    from rerank_utils.models.export import export_onnx, quantize_onnx
    from rerank_utils.models.loading import load_cross_encoder
    from rerank_utils.paths import artifacts_dir

    model = load_cross_encoder(str(artifacts_dir("cpu", "models", architecture, create=False)), device="cpu")
    folder = ONNX_ROOT / architecture
    export_onnx(model, folder)
    quantize_onnx(folder)
    quantize_onnx(folder, file_name="model_qint8_per_tensor.onnx", per_channel=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency-queries", type=int, default=30, help="queries timed one by one (default: %(default)s)")
    ap.add_argument("--architecture", choices=[*ARCHITECTURES, "both"], default="both", help="(default: %(default)s)")
    ap.add_argument("--variants", nargs="+", metavar="TEXT", help="only the variants whose name contains one of these (and the baseline)")
    ap.add_argument("--out", type=Path, default=OUT, help="results file (default: %(default)s)")
    ap.add_argument("--child", nargs=3, metavar=("ARCH", "KIND", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], int(args.child[2]), args.latency_queries)))
        return
    archs = ARCHITECTURES if args.architecture == "both" else (args.architecture,)
    out_path: Path = args.out
    results: dict = json.loads(out_path.read_text()) if out_path.is_file() else {}
    variants = {n: v for n, v in VARIANTS.items() if not args.variants or "baseline" in n or any(s in n for s in args.variants)}
    if results and not all(a in results for a in ARCHITECTURES) and "PyTorch fp32, batch 32 (baseline)" in results:
        results = {"bridge": results}  # the file of earlier versions held the bridge's rows only
    for arch in archs:
        prepare_onnx(arch)
        rows = {}
        for name, (kind, batch) in variants.items():
            out = subprocess.run([sys.executable, __file__, "--child", arch, kind, str(batch), "--latency-queries", str(args.latency_queries)],
                                 capture_output=True, text=True, check=True)
            rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
            print(arch, name, rows[name], flush=True)
        base = rows["PyTorch fp32, batch 32 (baseline)"]
        for r in rows.values():
            r["speed-up"] = r["pairs_per_s"] / base["pairs_per_s"]
            r["ndcg@10 change"] = r["ndcg@10"] - base["ndcg@10"]
        results[arch] = {**rows, "_run": {"latency_queries": args.latency_queries, "at": time.strftime("%Y-%m-%d %H:%M")}}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=1))
    for arch in archs:
        print(f"\n{arch}:\n| variant | pairs/s | speed-up | top-20 p50 / p95 ms | top-100 p50 / p95 ms | peak RSS MB | NDCG@10 | change |")
        print("|---|---|---|---|---|---|---|---|")
        for name, r in results[arch].items():
            if name.startswith("_"):
                continue
            print(f"| {name} | {r['pairs_per_s']:.0f} | {r['speed-up']:.2f}x | {r['top20_p50_ms']:.0f} / {r['top20_p95_ms']:.0f} | "
                  f"{r['top100_p50_ms']:.0f} / {r['top100_p95_ms']:.0f} | {r['peak_rss_mb']:.0f} | {r['ndcg@10']:.3f} | {r['ndcg@10 change']:+.3f} |")


if __name__ == "__main__":
    main()
