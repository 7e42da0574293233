"""Training with sorted micro-batches (``TrainingConfig.sorted_micro_batch``) against the plain padded batch: notebook
03's recipe of one architecture (the cpu profile's, on its split, seed and negatives) trained twice side by side in
one run, first as it is, then with each batch run through the model in micro-batches of N pairs sorted by token
count. Reported: each training's seconds (the ratio is the figure; absolute times vary on these shared machines),
the padding share of the tokens computed, the best validation NDCG@10, and the test NDCG@10 of the bi-encoder's
top-20 reranked by each, with the paired bootstrap interval of sorted minus plain. Dropout draws its masks per
micro-batch, so the two trainings follow different random paths: the interval says whether that moved the result.

    .venv/bin/python benchmarks/sorted_micro_batch_training.py --architecture bridge     # about 11 min on 2 cores
    .venv/bin/python benchmarks/sorted_micro_batch_training.py --architecture standard   # about 16 min
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

import numpy as np  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from rerank_utils.cli.config_files import load_config  # noqa: E402
from rerank_utils.cli.steps import recipe_for  # noqa: E402
from rerank_utils.data.sources import build_dataset  # noqa: E402
from rerank_utils.data.splits import split_dataset  # noqa: E402
from rerank_utils.evaluation.metrics import evaluate_run  # noqa: E402
from rerank_utils.evaluation.significance import compare  # noqa: E402
from rerank_utils.models.loading import load_bi_encoder  # noqa: E402
from rerank_utils.models.precision import machine_summary  # noqa: E402
from rerank_utils.models.resolve import resolve_model  # noqa: E402
from rerank_utils.retrieval.reranking import rerank_run  # noqa: E402
from rerank_utils.training.mining import mine_negatives  # noqa: E402
from rerank_utils.training.recipes import FirstStages, train_recipe, trained_on  # noqa: E402
from rerank_utils.training.samples import training_rows  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TOP_K = 20


def padding_share(recipe, train, stages, size: int, seed: int) -> dict[str, float]:
    """Share of the computed tokens that are padding, per batch as the trainer forms them (a seeded shuffle of the
    rows, ``batch_size`` rows a step), in sentence-transformers' own passes (a listwise loss: ``batch_size`` pairs a
    pass in input order; a pointwise one: the whole batch) and in micro-batches of ``size`` pairs sorted by token count."""
    rows = training_rows(trained_on(recipe, train), mine_negatives(trained_on(recipe, train), recipe.mining,
                                                                   retriever=stages.retriever_for(recipe.mining)).negatives, recipe.training.loss)
    tok = AutoTokenizer.from_pretrained(resolve_model("default"))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    real = plain = sorted_ = 0
    for start in range(0, len(rows), recipe.training.batch_size):
        batch = [rows[i] for i in order[start: start + recipe.training.batch_size]]
        pairs = [(r["query"], d) for r in batch for d in r["docs"]] if "docs" in batch[0] else [(r["query"], r["passage"]) for r in batch]
        lengths = np.array([min(recipe.training.max_length, len(tok(q, d)["input_ids"])) for q, d in pairs])
        real += lengths.sum()
        own = recipe.training.batch_size if "docs" in batch[0] else len(lengths)  # sentence-transformers' pass size
        plain += sum(lengths[i: i + own].max() * len(lengths[i: i + own]) for i in range(0, len(lengths), own))
        ordered = np.sort(lengths)[::-1]
        sorted_ += sum(ordered[i] * len(ordered[i: i + size]) for i in range(0, len(ordered), size))
    return {"plain": round(1 - real / plain, 3), f"sorted micro-batches of {size}": round(1 - real / sorted_, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", choices=("bridge", "standard"), default="bridge")
    parser.add_argument("--size", type=int, default=8, help="pairs per forward pass (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None, help="default: results/sorted_micro_batch_training_<architecture>.json")
    args = parser.parse_args(argv)
    out_path = args.out or RESULTS / f"sorted_micro_batch_training_{args.architecture}.json"
    splits = split_dataset(build_dataset("faq-en"), seed=args.seed)
    train, val, test = splits["train"], splits["val"], splits["test"]
    stages = FirstStages(train.corpus, load_bi_encoder("default", device="cpu"))
    base = recipe_for(load_config(profile="cpu"), args.architecture)
    test_run = stages.dense.search(test.queries, top_k=TOP_K)
    out = {"machine": machine_summary(), "at": time.strftime("%Y-%m-%d %H:%M"), "seed": args.seed, "architecture": args.architecture,
           "recipe": base.to_dict(), "sizes": {k: len(v) for k, v in splits.items()},
           "test bi-encoder ndcg@10": round(evaluate_run(test_run, test.qrels, ["ndcg@10"]).aggregate["ndcg@10"], 4),
           "padding share of computed tokens": padding_share(base, train, stages, args.size, args.seed)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in (("plain", None), (f"sorted {args.size}", args.size)):
            recipe = replace(base, training=replace(base.training, sorted_micro_batch=size))
            run = train_recipe(recipe, train, val, stages, Path(tmp) / str(size), top_k=TOP_K, device="cpu")
            results[label] = evaluate_run(rerank_run(run.model, test, test_run, top_k=TOP_K), test.qrels, ["ndcg@10"])
            out[label] = {"train_seconds": round(run.result.train_seconds, 1), "epochs run": run.row()["epochs run"],
                          "best validation ndcg@10": round(run.result.best_metric, 4),
                          "test ndcg@10": round(results[label].aggregate["ndcg@10"], 4)}
            print(label, out[label], flush=True)
    sorted_label = f"sorted {args.size}"
    c = compare(results["plain"], results[sorted_label], "ndcg@10", seed=args.seed)
    out["training speed-up"] = round(out["plain"]["train_seconds"] / out[sorted_label]["train_seconds"], 2)
    out["test ndcg@10 sorted - plain"] = [round(c.diff, 4), round(c.low, 4), round(c.high, 4)]
    out["validation ndcg@10 sorted - plain"] = round(out[sorted_label]["best validation ndcg@10"] - out["plain"]["best validation ndcg@10"], 4)
    out_path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
