"""Does training in bf16 on the CPU cost NDCG@10? The cpu profile's bridge recipe (notebook 03's, the published
reranker) trained twice on the same split, seed and negatives, in fp32 and in bf16 autocast (``precision="bf16"``,
allowed only on a CPU with native bf16), side by side in one run. Reported: each training's seconds (the ratio is
the figure; absolute times vary on these shared machines), the best validation NDCG@10, and the test NDCG@10 of
the bi-encoder's top-20 reranked by each, with the paired bootstrap interval of bf16 minus fp32.

Issue 14 asks whether the trainer's ``precision="auto"`` should train in bf16 on such a CPU; the figures and the
decision (fp32 by default, ``precision="bf16"`` as an opt-in) are in benchmarks/README.md.

    .venv/bin/python benchmarks/bf16_training_quality.py      # about 8 min on 2 AVX512-BF16 + AMX cores
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rerank_utils.cli.config_files import load_config  # noqa: E402
from rerank_utils.cli.steps import recipe_for  # noqa: E402
from rerank_utils.data.sources import build_dataset  # noqa: E402
from rerank_utils.data.splits import split_dataset  # noqa: E402
from rerank_utils.evaluation.metrics import evaluate_run  # noqa: E402
from rerank_utils.evaluation.significance import compare  # noqa: E402
from rerank_utils.models.loading import load_bi_encoder  # noqa: E402
from rerank_utils.models.precision import cpu_has_bf16, machine_summary  # noqa: E402
from rerank_utils.retrieval.reranking import rerank_run  # noqa: E402
from rerank_utils.training.recipes import FirstStages, train_recipe  # noqa: E402

OUT = Path(__file__).parent / "results" / "bf16_training_quality.json"
TOP_K = 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if not cpu_has_bf16():
        print("this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 training is emulated here, 13-15x slower "
              "(benchmarks/bf16_training_step.py); nothing to measure")
        return 1
    splits = split_dataset(build_dataset("faq-en"), seed=args.seed)
    train, val, test = splits["train"], splits["val"], splits["test"]
    stages = FirstStages(train.corpus, load_bi_encoder("default", device="cpu"))
    base = recipe_for(load_config(profile="cpu"), "bridge")
    test_run = stages.dense.search(test.queries, top_k=TOP_K)
    first = evaluate_run(test_run, test.qrels, ["ndcg@10"])
    out = {"machine": machine_summary(), "at": time.strftime("%Y-%m-%d %H:%M"), "seed": args.seed,
           "recipe": base.to_dict(), "sizes": {k: len(v) for k, v in splits.items()},
           "test bi-encoder ndcg@10": round(first.aggregate["ndcg@10"], 4)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            recipe = replace(base, training=replace(base.training, precision=precision))
            t = time.perf_counter()
            run = train_recipe(recipe, train, val, stages, Path(tmp) / precision, top_k=TOP_K, device="cpu")
            seconds = time.perf_counter() - t
            reranked = rerank_run(run.model, test, test_run, top_k=TOP_K)
            results[precision] = evaluate_run(reranked, test.qrels, ["ndcg@10"])
            out[precision] = {"train_seconds": round(run.result.train_seconds, 1), "recipe_seconds": round(seconds, 1),
                              "best validation ndcg@10": round(run.result.best_metric, 4),
                              "test ndcg@10": round(results[precision].aggregate["ndcg@10"], 4)}
            print(precision, out[precision], flush=True)
    c = compare(results["fp32"], results["bf16"], "ndcg@10", seed=args.seed)
    out["bf16 speed-up (training)"] = round(out["fp32"]["train_seconds"] / out["bf16"]["train_seconds"], 2)
    out["test ndcg@10 bf16 - fp32"] = [round(c.diff, 4), round(c.low, 4), round(c.high, 4)]
    out["validation ndcg@10 bf16 - fp32"] = round(out["bf16"]["best validation ndcg@10"] - out["fp32"]["best validation ndcg@10"], 4)
    args.out.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
