"""Search fine-tuning recipes for the standard and the bridge cross-encoder on the offline default (profile `cpu`).

Every variant mines negatives for the training split, fine-tunes the packaged MiniLM as a cross-encoder,
keeps its best epoch on validation, and is then scored on
  * validation: NDCG@10 of reranking BM25's and the bi-encoder's top-20 (the mean of the two is what the
    winner is chosen by: choices are made on validation only);
  * test: the same, with paired-bootstrap 95 % intervals against each first stage alone (reported, never
    used to choose).
Results are appended to benchmarks/results/recipe_search.json as each variant finishes (a variant already
there is skipped unless --force), and the table is printed as markdown.

    .venv/bin/python benchmarks/recipe_search.py                 # every variant (about 5 min each here)
    .venv/bin/python benchmarks/recipe_search.py --only bce-mixed-lr1e-4
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rerank_utils.data.saved_splits import prepare_splits  # noqa: E402
from rerank_utils.evaluation.reports import evaluate_reranker  # noqa: E402
from rerank_utils.models.bridge import bridge_summary  # noqa: E402
from rerank_utils.models.loading import load_bi_encoder  # noqa: E402
from rerank_utils.training.arguments import TrainingConfig  # noqa: E402
from rerank_utils.training.mining import MiningConfig  # noqa: E402
from rerank_utils.training.recipes import FirstStages, Recipe, train_recipe

OUT = Path(__file__).parent / "results" / "recipe_search.json"


def variants() -> list[Recipe]:
    T = dict(max_length=128, batch_size=16, early_stopping_patience=2)
    return [
        Recipe("bce-dense4-lr5e-5", MiningConfig("dense", num_negatives=4), TrainingConfig(loss="bce", epochs=2, learning_rate=5e-5, **T)),
        Recipe("bce-mixed-lr1e-4", MiningConfig("mixed", num_negatives=5, hard_fraction=0.4), TrainingConfig(loss="bce", epochs=3, learning_rate=1e-4, **T)),
        Recipe("bce-random5-lr1e-4", MiningConfig("random", num_negatives=5), TrainingConfig(loss="bce", epochs=3, learning_rate=1e-4, **T)),
        Recipe("bce-mixed-bm25-lr1e-4", MiningConfig("mixed", num_negatives=5, hard_fraction=0.4, hard_source="bm25"), TrainingConfig(loss="bce", epochs=3, learning_rate=1e-4, **T)),
        Recipe("lambda-mixed-lr1e-4", MiningConfig("mixed", num_negatives=7, hard_fraction=0.43), TrainingConfig(loss="lambda", epochs=3, learning_rate=1e-4, batch_size=4, max_length=128, early_stopping_patience=2)),
        # issue 15 (the cpu tutorial in a coffee break): the standard recipe with one epoch fewer and half the pairs
        Recipe("lambda-mixed-lr1e-4-2ep", MiningConfig("mixed", num_negatives=7, hard_fraction=0.43), TrainingConfig(loss="lambda", epochs=2, learning_rate=1e-4, batch_size=4, max_length=128, early_stopping_patience=2)),
        Recipe("lambda-mixed3-lr1e-4-2ep", MiningConfig("mixed", num_negatives=3, hard_fraction=0.43), TrainingConfig(loss="lambda", epochs=2, learning_rate=1e-4, batch_size=4, max_length=128, early_stopping_patience=2)),
        Recipe("lambda-mixed3-lr1e-4", MiningConfig("mixed", num_negatives=3, hard_fraction=0.43), TrainingConfig(loss="lambda", epochs=3, learning_rate=1e-4, batch_size=4, max_length=128, early_stopping_patience=2)),
        Recipe("mnrl-mixed-lr5e-5", MiningConfig("mixed", num_negatives=4, hard_fraction=0.5), TrainingConfig(loss="mnrl", epochs=3, learning_rate=5e-5, **T)),
        *bridge_variants(),
    ]


def bridge_variants() -> list[Recipe]:
    """The bridge reranker (rerank_utils.models.bridge): listwise softmax over 1 positive + 7 negatives per query,
    4 queries a step, max_length 256 (FAQ pairs are ~70 tokens: nothing is cut, so step 0 = the bi-encoder)."""
    mixed = MiningConfig("mixed", num_negatives=7, hard_fraction=0.57)  # 4 dense hard + 3 random
    T = dict(loss="softmax", batch_size=4, max_length=256, early_stopping_patience=1, bridge_learning_rate=5e-2)

    def bridge(name, mining=mixed, epochs=2, lr=2e-5, **opts):
        return Recipe(name, mining, TrainingConfig(epochs=epochs, learning_rate=lr, **T), architecture="bridge",
                      bridge={"bias_mode": "layer", "bias_start": -8.0, **opts})

    return [
        bridge("bridge-layer-b8-lr2e-5", epochs=3),
        bridge("bridge-layer-b4-lr2e-5", bias_start=-4.0),
        bridge("bridge-head-b8-lr2e-5", bias_mode="head"),
        bridge("bridge-layer-b8-lr5e-5", lr=5e-5),
        bridge("bridge-layer-b8-dense7", mining=MiningConfig("dense", num_negatives=7)),
        # issue 15: the chosen bridge (lr 5e-5, best epoch 1 of 2) trained one epoch, with 7 or 3 negatives
        bridge("bridge-layer-b8-lr5e-5-1ep", lr=5e-5, epochs=1),
        bridge("bridge-layer-b8-lr5e-5-1ep-mixed3", mining=MiningConfig("mixed", num_negatives=3, hard_fraction=0.57), lr=5e-5, epochs=1),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", help="variant names to run")
    ap.add_argument("--force", action="store_true", help="rerun variants already in the results file")
    ap.add_argument("--workdir", default="/tmp/recipe_search", help="where the trained models go (not kept)")
    args = ap.parse_args()

    done = json.loads(OUT.read_text()) if OUT.is_file() else {}
    splits = prepare_splits("cpu", "faq-en", seed=42)
    train, val, test = splits["train"], splits["val"], splits["test"]
    stages = FirstStages(train.corpus, load_bi_encoder())
    val_runs, test_runs = stages.runs(val.queries, 20), stages.runs(test.queries, 20)
    for recipe in variants():
        if args.only and recipe.name not in args.only:
            continue
        if recipe.name in done and not args.force:
            print(f"skip {recipe.name} (in {OUT.name}; --force to rerun)")
            continue
        t0 = time.perf_counter()
        run = train_recipe(recipe, train, val, stages, Path(args.workdir) / recipe.name)
        v = evaluate_reranker(run.model, val, val_runs)
        t = evaluate_reranker(run.model, test, test_runs)
        done[recipe.name] = {
            "recipe": recipe.to_dict(),
            "train_seconds": run.result.train_seconds,
            "wall_seconds": time.perf_counter() - t0,
            "pairs_per_second": run.result.pairs_per_second,
            "best_val_during_training": run.result.best_metric,
            "val_by_epoch": run.result.curves()["val_ndcg@10"],  # bi-encoder top-20 reranked, after each epoch
            "val": {k: r.aggregate["ndcg@10"] for k, r in v.results.items()},
            "val_score": (v.results["BM25 + reranker"].aggregate["ndcg@10"] + v.results["bi-encoder + reranker"].aggregate["ndcg@10"]) / 2,
            "test": {k: r.aggregate["ndcg@10"] for k, r in t.results.items()},
            "test_intervals": {k: [c.diff, c.low, c.high, c.p_value] for k, c in t.comparisons.items()},
            "mining": run.mining_report.counts,
        }
        if recipe.architecture == "bridge":
            done[recipe.name]["bridge"] = bridge_summary(run.model)  # how far cross-attention opened
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(done, indent=1))
        print(f"{recipe.name}: val {done[recipe.name]['val_score']:.4f}  test {done[recipe.name]['test']}", flush=True)
    print_table(done)


def print_table(done: dict) -> None:
    print("| variant | val NDCG@10 (mean of BM25+CE, bi+CE) | test BM25+CE vs BM25 [95% CI] | test bi+CE vs bi [95% CI] | train s |")
    print("|---|---|---|---|---|")
    best = max(done, key=lambda k: done[k]["val_score"]) if done else None
    for name, r in sorted(done.items(), key=lambda kv: -kv[1]["val_score"]):
        ti = r["test_intervals"]
        b = ti["BM25 + reranker vs BM25"]
        d = ti["bi-encoder + reranker vs bi-encoder"]
        print(
            f"| {name}{' (best on validation)' if name == best else ''} | {r['val_score']:.3f} | "
            f"{r['test']['BM25 + reranker']:.3f} vs {r['test']['BM25']:.3f}: {b[0]:+.3f} [{b[1]:+.3f}, {b[2]:+.3f}] | "
            f"{r['test']['bi-encoder + reranker']:.3f} vs {r['test']['bi-encoder']:.3f}: {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] | "
            f"{r['train_seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
