"""The fast path of evaluation (``rerank_utils.models.fast.fast_reranker``) against PyTorch fp32 sorted by tokens,
side by side in one run, for the models a ``cpu`` run of notebook 03 trained (the standard cross-encoder and the
bridge): the test questions' top-20 from BM25, the bi-encoder and the fine-tuned retriever, the pairs notebook 04
reranks. For each model: the export's seconds, the seconds to score every pair (median of ``--passes`` after a
warm-up, alternating the two ways), the largest score difference, and per first stage the NDCG@10 of both rerankings
with a paired bootstrap interval of the difference and the share of questions whose top-10 is the same. The machine
is recorded; on a CPU without native bf16 ``fast_reranker`` hands back the model itself and there is nothing to compare.

    RERANK_ARTIFACTS_DIR=/tmp/cpu_art5 .venv/bin/python benchmarks/fast_reranker.py   # about 7 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from rerank_utils.data.saved_splits import prepare_splits
from rerank_utils.evaluation.metrics import evaluate_run, run_agreement
from rerank_utils.evaluation.significance import compare
from rerank_utils.models.fast import fast_path_available, fast_reranker
from rerank_utils.models.loading import load_bi_encoder
from rerank_utils.models.precision import machine_summary
from rerank_utils.paths import artifacts_dir
from rerank_utils.retrieval.dense import DenseRetriever
from rerank_utils.retrieval.reranking import rerank_run
from rerank_utils.training.recipes import FirstStages

from notebook03_models import notebook03_rerankers  # this folder

OUT = Path(__file__).parent / "results" / "fast_reranker.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", help="whose notebook-03 models to load (artifacts/<profile>/models)")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not fast_path_available():
        raise SystemExit("this CPU has no native bf16 (or OpenVINO is not installed): fast_reranker returns the PyTorch model itself")

    splits = prepare_splits(args.profile, "faq-en", seed=42)
    train, test = splits["train"], splits["test"]
    stages = FirstStages(train.corpus, load_bi_encoder("default"))
    runs = stages.runs(test.queries, top_k=20)
    retriever = artifacts_dir(args.profile, "models", "retriever", create=False)
    runs["fine-tuned bi-encoder"] = DenseRetriever(train.corpus, load_bi_encoder(str(retriever))).search(test.queries, top_k=20)
    pairs = sorted({(test.queries[q], test.corpus[d]) for run in runs.values() for q, docs in run.items() for d in docs})
    rows = {}
    for name, model in notebook03_rerankers(args.profile):
        start = time.perf_counter()
        fast = fast_reranker(model)
        export_s = time.perf_counter() - start
        ways = {"PyTorch fp32 (sorted by tokens)": model, "fast path (OpenVINO bf16)": fast}
        seconds = {label: [] for label in ways}
        scores = {}
        for scorer in ways.values():
            scorer.predict(pairs[:64])  # warm-up
        for _ in range(args.passes):
            for label, scorer in ways.items():
                start = time.perf_counter()
                scores[label] = {fs: rerank_run(scorer, test, run, top_k=20) for fs, run in runs.items()}
                seconds[label].append(time.perf_counter() - start)
        base, quick = (statistics.median(s) for s in seconds.values())
        torch_runs, fast_runs = scores.values()
        quality = {}
        for fs in runs:
            a, b = evaluate_run(torch_runs[fs], test.qrels), evaluate_run(fast_runs[fs], test.qrels)
            c = compare(a, b, "ndcg@10")
            quality[fs] = {"ndcg@10 PyTorch": a.aggregate["ndcg@10"], "ndcg@10 fast": b.aggregate["ndcg@10"],
                           "difference": c.diff, "95% CI": [c.low, c.high], "same top-10": run_agreement(torch_runs[fs], fast_runs[fs], k=10)}
        diff = max(abs(torch_runs[fs][q][d] - fast_runs[fs][q][d]) for fs in runs for q in torch_runs[fs] for d in torch_runs[fs][q])
        rows[name] = {"pairs": sum(len(r) for run in runs.values() for r in run.values()), "export_s": export_s, "seconds": seconds,
                      "speed_up": base / quick, "max_abs_score_difference": diff, "quality": quality}
        print(f"{name}: export {export_s:.1f} s; 3 first stages' top-20 reranked: PyTorch {base:.1f} s, fast {quick:.1f} s "
              f"({base / quick:.2f}x); scores within {diff:.3f}", flush=True)
        for fs, q in quality.items():
            print(f"  {fs}: NDCG@10 {q['ndcg@10 PyTorch']:.4f} -> {q['ndcg@10 fast']:.4f} ({q['difference']:+.4f} "
                  f"[{q['95% CI'][0]:+.4f}, {q['95% CI'][1]:+.4f}]), same top-10 on {q['same top-10']:.0%} of the questions", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"_run": {"machine": machine_summary(), "passes": args.passes}, **rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
