"""Scale check for dense negative mining: 10k queries x 100k docs without a full score matrix.

No model: a fake encoder returns precomputed random unit vectors, looked up by the text's id
("doc 123", "query 45"). Each query is a noisy copy of its positive document (cosine about 0.78), so
the margins behave as with a real retriever. The whole dense path of
:func:`rerank_utils.training.mining.mine_negatives` runs (DenseRetriever.search in chunks, positive scores,
margins, random top-ups), and the script reports wall time, peak memory (tracemalloc for Python and
numpy allocations, ``ru_maxrss`` for the process) and the size a full queries x docs float32 matrix
would have needed.

    .venv/bin/python benchmarks/mining_scale.py --queries 10000 --docs 100000

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rerank_utils.data.records import RetrievalDataset  # noqa: E402
from rerank_utils.training.mining import MiningConfig, mine_negatives  # noqa: E402


class LookupEncoder:
    """``encode(["doc 12", "query 3", ...])`` -> the precomputed rows (unit vectors)."""

    def __init__(self, doc_vectors: np.ndarray, query_vectors: np.ndarray):
        self.tables = {"doc": doc_vectors, "query": query_vectors}

    def encode(self, texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False):
        kind = texts[0].split(" ", 1)[0]
        idx = np.fromiter((int(t.split(" ", 1)[1]) for t in texts), dtype=np.int64, count=len(texts))
        return self.tables[kind][idx]


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=10000)
    ap.add_argument("--docs", type=int, default=100000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--top-k", type=int, default=50, help="range_max: candidates per query")
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--num-negatives", type=int, default=4)
    ap.add_argument("--strategy", default="dense", choices=["dense", "mixed"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="exact", choices=["exact", "faiss"], help="DenseRetriever backend")
    ap.add_argument("--out", default="benchmarks/results/mining_scale.json")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    docs = unit(rng.standard_normal((args.docs, args.dim), dtype=np.float32))
    positives = rng.integers(0, args.docs, size=args.queries)
    queries = unit(docs[positives] + 0.8 * unit(rng.standard_normal((args.queries, args.dim), dtype=np.float32)))
    ds = RetrievalDataset(
        corpus={f"d{i}": f"doc {i}" for i in range(args.docs)},
        queries={f"q{i}": f"query {i}" for i in range(args.queries)},
        qrels={f"q{i}": {f"d{p}": 1} for i, p in enumerate(positives.tolist())},
        name="synthetic-scale",
    )
    encoder = LookupEncoder(docs, queries)
    inputs_mb = (docs.nbytes + queries.nbytes) / 2**20
    config = MiningConfig(strategy=args.strategy, num_negatives=args.num_negatives, range_max=args.top_k,
                          hard_source="dense", dense_backend=args.backend)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB
    tracemalloc.start()
    t0 = time.perf_counter()
    result = mine_negatives(ds, config, model=encoder, chunk_size=args.chunk_size)
    wall = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    rep = result.report
    full_matrix_mb = args.queries * args.docs * 4 / 2**20
    chunk_matrix_mb = min(args.chunk_size, args.queries) * args.docs * 4 / 2**20
    out = {
        "queries": args.queries,
        "docs": args.docs,
        "dim": args.dim,
        "top_k": args.top_k,
        "chunk_size": args.chunk_size,
        "strategy": args.strategy,
        "backend": args.backend,
        "num_negatives": args.num_negatives,
        "wall_s": round(wall, 2),
        "queries_per_s": round(args.queries / wall, 1),
        "tracemalloc_peak_mb": round(peak / 2**20, 1),
        "ru_maxrss_mb": round(rss_peak, 1),
        "ru_maxrss_before_mining_mb": round(rss_before, 1),
        "input_vectors_mb": round(inputs_mb, 1),
        "chunk_score_matrix_mb": round(chunk_matrix_mb, 1),
        "full_matrix_would_be_mb": round(full_matrix_mb, 1),
        "negatives": rep.total,
        "counts": rep.counts,
        "dropped_false_negative": rep.dropped_false_negative,
        "topped_up": rep.topped_up,
        "short_queries": len(rep.short_queries),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=2))
    print()
    print("| queries | docs | dim | top-k | chunk | wall s | tracemalloc peak MB | ru_maxrss MB | full matrix MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.queries} | {args.docs} | {args.dim} | {args.top_k} | {args.chunk_size} | {out['wall_s']} | "
          f"{out['tracemalloc_peak_mb']} | {out['ru_maxrss_mb']} | {out['full_matrix_would_be_mb']} |")
    return out


if __name__ == "__main__":
    main()
