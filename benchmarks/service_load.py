"""The rerank service under load: 400 requests from 16 concurrent clients (each request one test query
with its bi-encoder top-20, Cohere's /v2/rerank shape), against a real uvicorn server on 127.0.0.1 serving
the `cpu` profile's default reranker (artifacts/cpu/models/reranker, saved by notebook 03).

Variants: the PyTorch backend and the ONNX int8 backend with the cache off (every pair goes through the
model: the micro-batcher's throughput), then ONNX int8 with the in-process LRU cache and with Redis
(400 requests over the 99 test queries: after the first round, repeats are served from the cache). The
Redis row needs `redis-server` on the PATH (the script starts its own on a free port).

    .venv/bin/python benchmarks/service_load.py            # about 5 min on 2 cores; run notebook 03 (cpu) first

Writes results/service_load.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "service_load.json"


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--top-k", type=int, default=20, help="documents a request (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    from rerank_utils.data.saved_splits import prepare_splits
    from rerank_utils.models.export import export_onnx, quantize_onnx
    from rerank_utils.models.loading import load_bi_encoder, load_cross_encoder
    from rerank_utils.paths import artifacts_dir
    from rerank_utils.retrieval.dense import DenseRetriever
    from rerank_utils.serving.app import load_service
    from rerank_utils.serving.background import BackgroundServer, free_port
    from rerank_utils.serving.load_client import load_test, rerank_bodies

    model_dir = artifacts_dir("cpu", "models", "reranker", create=False)
    test = prepare_splits("cpu", "faq-en", seed=42)["test"]
    run = DenseRetriever(test.corpus, load_bi_encoder("default")).search(test.queries, top_k=args.top_k)
    bodies = rerank_bodies(test, run, top_k=args.top_k, n=args.requests)
    onnx_dir = Path(tempfile.mkdtemp(prefix="service_load_")) / "onnx"
    export_onnx(load_cross_encoder(str(model_dir), device="cpu"), onnx_dir)
    quantize_onnx(onnx_dir)

    redis_proc, redis_url = None, None
    if shutil.which("redis-server"):
        port = free_port()
        redis_proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(onnx_dir.parent)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        redis_url = f"redis://127.0.0.1:{port}/0"

    variants = {
        "PyTorch, no cache": dict(model_dir=str(model_dir), backend="torch", cache_size=0),
        "ONNX int8, no cache": dict(model_dir=str(onnx_dir), backend="onnx", onnx_file="model_qint8.onnx", cache_size=0),
        "ONNX int8, LRU cache": dict(model_dir=str(onnx_dir), backend="onnx", onnx_file="model_qint8.onnx"),
    }
    if redis_url:
        variants["ONNX int8, Redis cache"] = dict(model_dir=str(onnx_dir), backend="onnx", onnx_file="model_qint8.onnx", redis_url=redis_url)
    results = {}
    try:
        for name, kw in variants.items():
            service = load_service(**kw, device="cpu", max_batch=64, max_wait_ms=5)
            with BackgroundServer(service) as srv:
                load_test(srv.url, bodies[:4], concurrency=2)  # warm-up, not measured
                pairs0, batches0 = service.counters["pairs_scored"], service.scorer.batches
                hits0, misses0 = service.cache.hits, service.cache.misses
                r = load_test(srv.url, bodies, concurrency=args.concurrency)
                r["pairs_scored"] = int(service.counters["pairs_scored"] - pairs0)
                r["forward_passes"] = service.scorer.batches - batches0
                hits, misses = service.cache.hits - hits0, service.cache.misses - misses0
                r["cache_hit_rate"] = round(hits / (hits + misses), 3) if hits + misses else 0.0
                r["pairs_requested_per_s"] = round(len(bodies) * args.top_k / r["seconds"], 1)
            results[name] = r
            print(name, r, flush=True)
    finally:
        if redis_proc:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"requests": args.requests, "concurrency": args.concurrency, "top_k": args.top_k, "results": results}, indent=1))
    print("\n| variant | requests | errors | req/s | pairs/s requested | p50 ms | p95 ms | pairs through the model | forward passes | cache hit rate |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['requests']} | {r['errors']} | {r['throughput_rps']:.1f} | {r['pairs_requested_per_s']:.0f} | {r['p50_ms']:.0f} | "
              f"{r['p95_ms']:.0f} | {r['pairs_scored']} | {r['forward_passes']} | {r['cache_hit_rate']:.2f} |")


if __name__ == "__main__":
    main()
