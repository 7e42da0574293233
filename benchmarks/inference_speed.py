"""Reranking speed-ups side by side, one run, the same data: the `cpu` profile's default reranker (the
bridge saved by notebook 03 in artifacts/cpu/models/reranker) on PyTorch fp32 (the baseline, at several
batch sizes), exported to ONNX (fp32), ONNX with int8 dynamic quantisation, and the same two ONNX files
on OpenVINO's runtime (`pip install -e '.[openvino]'`).

For each: pairs/s over every test query's bi-encoder top-20 in one `predict` call, latency per query
(p50 / p95, one `predict` per query) for the top-20 and the top-100, peak resident memory (each variant in
its own process), and NDCG@10 of the reranked top-20 on the 99 test queries against the fp32 baseline.
FP16 is for GPUs (on a CPU it is slower); it is not measured on this machine. sentence-transformers'
own `backend="onnx"` / `"openvino"` for a standard cross-encoder is not measured either: it needs
optimum-onnx, which requires transformers < 4.58 (this stack has transformers 5).

    .venv/bin/python benchmarks/inference_speed.py            # run 03 on the cpu profile first
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
    "ONNX fp32, batch 32": ("onnx", 32),
    "ONNX int8 dynamic per-channel, batch 32": ("onnx-int8", 32),
    "ONNX int8 dynamic per-tensor, batch 32": ("onnx-int8pt", 32),
    "OpenVINO fp32, batch 32": ("openvino", 32),
    "OpenVINO on the int8 per-channel ONNX, batch 32": ("openvino-int8", 32),
}
ONNX_DIR = Path("/tmp/inference_speed/onnx")


def child(kind: str, batch: int, latency_queries: int) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np

    from rerank_utils.data.saved_splits import prepare_splits
    from rerank_utils.evaluation.metrics import evaluate_run
    from rerank_utils.models.loading import load_bi_encoder, load_cross_encoder
    from rerank_utils.models.onnx_runtime import OnnxBridgeReranker
    from rerank_utils.paths import artifacts_dir
    from rerank_utils.retrieval.dense import DenseRetriever
    from rerank_utils.retrieval.reranking import rerank_run

    splits = prepare_splits("cpu", "faq-en", seed=42)
    test = splits["test"]
    dense = DenseRetriever(test.corpus, load_bi_encoder("default"))
    run20 = dense.search(test.queries, top_k=20)
    run100 = dense.search(test.queries, top_k=100)
    if kind == "torch":
        model = load_cross_encoder(str(artifacts_dir("cpu", "models", "reranker", create=False)), device="cpu")
    else:
        file_name = {"int8": "model_qint8.onnx", "int8pt": "model_qint8_per_tensor.onnx"}.get(kind.split("-")[-1], "model.onnx")
        model = OnnxBridgeReranker(ONNX_DIR, file_name=file_name,
                                   runtime="openvino" if kind.startswith("openvino") else "onnxruntime")
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


def prepare_onnx() -> None:
    from rerank_utils.models.bridge import is_bridge
    from rerank_utils.models.export import export_onnx, quantize_onnx
    from rerank_utils.models.loading import load_cross_encoder
    from rerank_utils.paths import artifacts_dir

    model = load_cross_encoder(str(artifacts_dir("cpu", "models", "reranker", create=False)), device="cpu")
    if not is_bridge(model):
        raise SystemExit("the cpu profile's default reranker is not a bridge: this script exports bridges (rerank_utils.bridge)")
    export_onnx(model, ONNX_DIR)
    quantize_onnx(ONNX_DIR)
    quantize_onnx(ONNX_DIR, file_name="model_qint8_per_tensor.onnx", per_channel=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency-queries", type=int, default=30, help="queries timed one by one (default: %(default)s)")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.latency_queries)))
        return
    prepare_onnx()
    results = {}
    for name, (kind, batch) in VARIANTS.items():
        out = subprocess.run([sys.executable, __file__, "--child", kind, str(batch), "--latency-queries", str(args.latency_queries)],
                             capture_output=True, text=True, check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    base = results["PyTorch fp32, batch 32 (baseline)"]
    for r in results.values():
        r["speed-up"] = r["pairs_per_s"] / base["pairs_per_s"]
        r["ndcg@10 change"] = r["ndcg@10"] - base["ndcg@10"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1))
    print("| variant | pairs/s | speed-up | top-20 p50 / p95 ms | top-100 p50 / p95 ms | peak RSS MB | NDCG@10 | change |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['pairs_per_s']:.0f} | {r['speed-up']:.2f}x | {r['top20_p50_ms']:.0f} / {r['top20_p95_ms']:.0f} | "
              f"{r['top100_p50_ms']:.0f} / {r['top100_p95_ms']:.0f} | {r['peak_rss_mb']:.0f} | {r['ndcg@10']:.3f} | {r['ndcg@10 change']:+.3f} |")


if __name__ == "__main__":
    main()
