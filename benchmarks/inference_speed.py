"""Reranking speed-ups side by side, one run, the same data, for BOTH architectures notebook 03 trains on the `cpu`
profile (artifacts/cpu/models/bridge and artifacts/cpu/models/standard): each on PyTorch fp32 (the baseline, at
several batch sizes) and in bf16 autocast, exported to ONNX (fp32), ONNX with onnxruntime's int8 dynamic
quantisation, and on OpenVINO (`pip install -e '.[openvino]'`): fp32, bf16, and int8 by NNCF's static quantisation
(calibrated on 640 training-split pairs), alone and with bf16 for the rest. Ratios are to the same architecture's
PyTorch fp32 in the same run; the machine (CPU, cores, SIMD flags, native bf16 or not) is recorded with them,
since these shared machines differ: bf16 is only fast where the CPU computes it natively (AVX512-BF16 / AMX).

For each: pairs/s over every test query's bi-encoder top-20 in one `predict` call, latency per query
(p50 / p95, one `predict` per query) for the top-20 and the top-100 and the pairs/s those requests reach, peak
resident memory (each variant in its own process), and NDCG@10 of the reranked top-20 on the 99 test queries
against the fp32 baseline. Both architectures are exported by `rerank_utils.models.export.export_onnx`
(sentence-transformers' own `backend="onnx"` needs optimum-onnx, which requires transformers < 4.58; this stack
has transformers 5). Every scorer sorts a request's pairs by length and pads per batch: PyTorch's
`CrossEncoder.predict` by characters, the exported scorers by tokens.

    .venv/bin/python benchmarks/inference_speed.py                       # run 03 on the cpu profile first
    .venv/bin/python benchmarks/inference_speed.py --architecture standard --latency-queries 20
    .venv/bin/python benchmarks/inference_speed.py --variants bf16 --out benchmarks/results/inference_speed_bf16.json
    .venv/bin/python benchmarks/inference_speed.py --passes 3 --variants "batch 8" NNCF   # warm, median of 3 passes
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

import numpy as np

from rerank_utils.models.precision import cpu_has_bf16, machine_summary

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
    "OpenVINO int8 (NNCF static), batch 32": ("openvino-nncf", 32),
    "OpenVINO int8 (NNCF static), batch 8": ("openvino-nncf", 8),
    "OpenVINO int8 (NNCF static), batch 16": ("openvino-nncf", 16),
    "OpenVINO int8 (NNCF static), batch 64": ("openvino-nncf", 64),
    "OpenVINO int8 (NNCF static) + bf16, batch 8": ("openvino-nncf-bf16", 8),
    "OpenVINO int8 (NNCF static) + bf16, batch 16": ("openvino-nncf-bf16", 16),
    "OpenVINO int8 (NNCF static) + bf16, batch 32": ("openvino-nncf-bf16", 32),
}
ARCHITECTURES = ("bridge", "standard")
ONNX_ROOT = Path("/tmp/inference_speed")
CALIBRATION_QUERIES = 32  # x 20 candidates: 640 calibration pairs for NNCF


def child(architecture: str, kind: str, batch: int, latency_queries: int, passes: int = 1) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np

    from rerank_utils.data.saved_splits import prepare_splits
    from rerank_utils.evaluation.metrics import evaluate_run
    from rerank_utils.models.export import OPENVINO_INT8, calibration_pairs
    from rerank_utils.models.loading import load_bi_encoder, load_cross_encoder
    from rerank_utils.models.onnx_runtime import OnnxBridgeReranker, OnnxCrossEncoder
    from rerank_utils.models.precision import Bf16Autocast
    from rerank_utils.paths import artifacts_dir
    from rerank_utils.retrieval.dense import DenseRetriever
    from rerank_utils.retrieval.reranking import rerank_run

    splits = prepare_splits("cpu", "faq-en", seed=42)
    test = splits["test"]
    bi_encoder = load_bi_encoder("default")
    dense = DenseRetriever(test.corpus, bi_encoder)
    run20 = dense.search(test.queries, top_k=20)
    run100 = dense.search(test.queries, top_k=100)
    if kind.startswith("torch"):
        model = load_cross_encoder(str(artifacts_dir("cpu", "models", architecture, create=False)), device="cpu")
    else:
        file_name = {"onnx-int8": "model_qint8.onnx", "openvino-int8": "model_qint8.onnx", "onnx-int8pt": "model_qint8_per_tensor.onnx",
                     "openvino-nncf": OPENVINO_INT8, "openvino-nncf-bf16": OPENVINO_INT8}.get(kind, "model.onnx")
        scorer = OnnxBridgeReranker if architecture == "bridge" else OnnxCrossEncoder
        model = scorer(ONNX_ROOT / architecture, file_name=file_name, runtime="openvino" if kind.startswith("openvino") else "onnxruntime",
                       precision="bf16" if kind.endswith("bf16") else "f32")
    if kind == "torch-bf16":  # autocast: matmuls in bf16, the rest in fp32
        model = Bf16Autocast(model)
    if passes > 1:  # warm: a first pass over OTHER pairs (validation queries), so the timed passes see no first call
        warm = calibration_pairs(splits["val"], bi_encoder, queries=20, top_k=20)  # 20 validation queries x their top-20
        model.predict(warm, batch_size=batch, show_progress_bar=False)
    timed = []
    for _ in range(passes):  # the median pass
        t0 = time.perf_counter()
        reranked = rerank_run(model, test, run20, top_k=20, batch_size=batch)
        timed.append(time.perf_counter() - t0)
    seconds = float(np.median(timed))
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
        latency[f"top{k}_pairs_per_s"] = k * len(times) / sum(times)  # one request of k pairs at a time
    return {"pairs": pairs, "seconds": seconds, "passes": timed, "pairs_per_s": pairs / seconds, "ndcg@10": ndcg, **latency,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def prepare_onnx(architecture: str) -> dict:
    """The exports every variant reads: ONNX fp32, onnxruntime int8 (per channel, per tensor) and NNCF's OpenVINO int8,
    calibrated on the TRAINING split's bi-encoder top-20 pairs (never the test queries it is measured on)."""
    from rerank_utils.data.saved_splits import prepare_splits
    from rerank_utils.models.export import calibration_pairs, export_onnx, quantize_onnx, quantize_openvino
    from rerank_utils.models.loading import load_bi_encoder, load_cross_encoder
    from rerank_utils.paths import artifacts_dir

    model = load_cross_encoder(str(artifacts_dir("cpu", "models", architecture, create=False)), device="cpu")
    folder = ONNX_ROOT / architecture
    export_onnx(model, folder)
    quantize_onnx(folder)
    quantize_onnx(folder, file_name="model_qint8_per_tensor.onnx", per_channel=False)
    train = prepare_splits("cpu", "faq-en", seed=42)["train"]
    quantize_openvino(folder, calibration_pairs(train, load_bi_encoder("default"), queries=CALIBRATION_QUERIES, top_k=20))
    return cost_per_pair(architecture, model)


def cost_per_pair(architecture: str, model, batches=(8, 16, 32, 64, 128)) -> dict:
    """FLOPs of one pair's forward pass at the test top-20's mean length: per encoder layer, the projections and the
    feed-forward (2 L (4 h^2 + 2 h i)) and attention's two products (4 L^2 h); the mean over real tokens (the work
    a pair needs) and, per batch size, over the padded batches that are computed: PyTorch's (``CrossEncoder.predict``
    sorts pairs by characters) and the exported scorers' (sorted by tokens)."""
    from rerank_utils.data.saved_splits import prepare_splits
    from rerank_utils.models.loading import load_bi_encoder, load_reranker
    from rerank_utils.retrieval.dense import DenseRetriever

    cfg = (model[0].model if architecture == "bridge" else model[0].auto_model).config
    test = prepare_splits("cpu", "faq-en", seed=42)["test"]
    run = DenseRetriever(test.corpus, load_bi_encoder("default")).search(test.queries, top_k=20)
    pairs = sorted(((test.queries[q], test.corpus[d]) for q in run for d in run[q]), key=lambda p: -(len(p[0]) + len(p[1])))
    real = load_reranker(ONNX_ROOT / architecture, backend="onnx").features(pairs)["attention_mask"].sum(axis=1)
    h, inter, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers

    def flops(lengths) -> float:
        lengths = np.asarray(lengths, dtype=float)
        return float(np.mean(layers * (2 * lengths * (4 * h * h + 2 * h * inter) + 4 * lengths * lengths * h))) / 1e9

    def padded(lengths, batch: int) -> np.ndarray:  # each pair computed at its batch's longest
        return np.concatenate([np.full(len(lengths[i: i + batch]), max(lengths[i: i + batch])) for i in range(0, len(lengths), batch)])

    by_chars, by_tokens = real.tolist(), sorted(real.tolist(), reverse=True)
    return {"layers": layers, "hidden": h, "intermediate": inter, "mean_tokens": float(np.mean(real)),
            "gflop_per_pair": flops(real),
            "mean_padded_tokens": {f"{sort} {b}": float(np.mean(padded(lengths, b))) for b in batches
                                   for sort, lengths in (("chars", by_chars), ("tokens", by_tokens))},
            "gflop_per_padded_pair": {f"{sort} {b}": flops(padded(lengths, b)) for b in batches
                                      for sort, lengths in (("chars", by_chars), ("tokens", by_tokens))}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency-queries", type=int, default=30, help="queries timed one by one (default: %(default)s)")
    ap.add_argument("--architecture", choices=[*ARCHITECTURES, "both"], default="both", help="(default: %(default)s)")
    ap.add_argument("--variants", nargs="+", metavar="TEXT", help="only the variants whose name contains one of these (and the baseline)")
    ap.add_argument("--out", type=Path, default=OUT, help="results file (default: %(default)s)")
    ap.add_argument("--passes", type=int, default=1,
                    help="timed passes over the test pairs, their median reported; above 1, after a warm-up pass over 400 "
                         "validation pairs (default: %(default)s: one cold pass, as the runs before 2026-12-05)")
    ap.add_argument("--child", nargs=3, metavar=("ARCH", "KIND", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], int(args.child[2]), args.latency_queries, args.passes)))
        return
    archs = ARCHITECTURES if args.architecture == "both" else (args.architecture,)
    out_path: Path = args.out
    results: dict = json.loads(out_path.read_text()) if out_path.is_file() else {}
    variants = {n: v for n, v in VARIANTS.items() if not args.variants or "baseline" in n or any(s in n for s in args.variants)}
    if not cpu_has_bf16():  # emulated bf16 runs a GEMM at well under 1 GFLOP/s here (gemm_peak.py): not worth the hours
        skipped = [n for n, (kind, _) in variants.items() if kind.endswith("bf16")]
        variants = {n: v for n, v in variants.items() if n not in skipped}
        print(f"no native bf16 on this CPU: skipped {skipped}", flush=True)
    if results and not all(a in results for a in ARCHITECTURES) and "PyTorch fp32, batch 32 (baseline)" in results:
        results = {"bridge": results}  # the file of earlier versions held the bridge's rows only
    def gemm_peak() -> dict:
        out = subprocess.run([sys.executable, str(Path(__file__).with_name("gemm_peak.py"))], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    peak_start = gemm_peak()
    print("GEMM peak at the start:", peak_start, flush=True)
    all_rows, costs = {}, {}
    for arch in archs:
        cost = prepare_onnx(arch)
        rows = {}
        for name, (kind, batch) in variants.items():
            out = subprocess.run([sys.executable, __file__, "--child", arch, kind, str(batch), "--latency-queries", str(args.latency_queries),
                                  "--passes", str(args.passes)],
                                 capture_output=True, text=True, check=True)
            rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
            print(arch, name, rows[name], flush=True)
        all_rows[arch], costs[arch] = rows, cost
    peak_end = gemm_peak()
    peak = {k: max(peak_start[k], peak_end[k]) for k in peak_start}  # the machine's best: a ceiling
    for arch, rows in all_rows.items():
        cost, base = costs[arch], rows["PyTorch fp32, batch 32 (baseline)"]
        for name, r in rows.items():
            r["speed-up"] = r["pairs_per_s"] / base["pairs_per_s"]
            r["ndcg@10 change"] = r["ndcg@10"] - base["ndcg@10"]
            sort = "chars" if name.startswith("PyTorch") else "tokens"
            r["gflops"] = r["pairs_per_s"] * cost["gflop_per_padded_pair"][f"{sort} {VARIANTS[name][1]}"]  # padding included
            ceiling = peak["int8_gops"] if "int8" in name else peak["bf16_gflops"] if "bf16" in name else peak["fp32_gflops"]
            r["fraction_of_peak"] = r["gflops"] / ceiling
        results[arch] = {**rows, "_run": {"latency_queries": args.latency_queries, "passes": args.passes, "at": time.strftime("%Y-%m-%d %H:%M"),
                                          "machine": machine_summary(), "gemm_peak": peak, "gemm_start": peak_start,
                                          "gemm_end": peak_end, "cost": cost}}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=1))
    for arch in archs:
        print(f"\n{arch} ({results[arch]['_run']['machine']}):")
        print(f"GEMM peak {results[arch]['_run'].get('gemm_peak')}; cost {results[arch]['_run'].get('cost')}")
        print("| variant | pairs/s | speed-up | top-20 p50 / p95 ms | top-100 p50 / p95 ms | pairs/s at top-20 / top-100 | peak RSS MB | NDCG@10 | change | GFLOP/s (share of peak) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, r in results[arch].items():
            if name.startswith("_"):
                continue
            print(f"| {name} | {r['pairs_per_s']:.0f} | {r['speed-up']:.2f}x | {r['top20_p50_ms']:.0f} / {r['top20_p95_ms']:.0f} | "
                  f"{r['top100_p50_ms']:.0f} / {r['top100_p95_ms']:.0f} | {r.get('top20_pairs_per_s', 0):.0f} / {r.get('top100_pairs_per_s', 0):.0f} | {r['peak_rss_mb']:.0f} | {r['ndcg@10']:.3f} | {r['ndcg@10 change']:+.3f} | "
                  f"{r.get('gflops', 0):.0f} ({r.get('fraction_of_peak', 0):.0%}) |")


if __name__ == "__main__":
    main()
