"""Which model should the labels fine-tune? The 2x2 of issue 12 on the offline default (packaged FAQ, cpu profile).

For each split seed: split the FAQ 70/10/20 by query, then
  * fine-tune the embedding model (rerank_utils.training.retriever: MNRL, 1 mined hard negative, best epoch on
    validation);
  * train the cpu profile's bridge reranker from the base model (what notebook 03 publishes today);
  * train the same bridge recipe grown from the FINE-TUNED embedding model, with its negatives mined and its
    epochs validated on the fine-tuned retriever's top-20 (so its step 0 is the best first stage);
  * choose, on validation, the fusion weight of each reranker with the fine-tuned retriever's scores.
Then on the test queries: {BM25, base bi-encoder, fine-tuned bi-encoder} alone and top-20 reranked by each
bridge, with paired-bootstrap 95 % intervals, and the verdict against the strongest first stage.
Results go to benchmarks/results/retriever_vs_reranker.json (one entry per seed, kept across runs).

    .venv/bin/python benchmarks/retriever_vs_reranker.py --seeds 42          # about 20 min on 2 cores
    .venv/bin/python benchmarks/retriever_vs_reranker.py --seeds 42 43 44 --table
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rerank_utils.cli.config_files import load_config
from rerank_utils.cli.steps import recipe_for  # noqa: E402
from rerank_utils.data.sources import build_dataset  # noqa: E402
from rerank_utils.data.splits import split_dataset  # noqa: E402
from rerank_utils.evaluation.metrics import evaluate_run  # noqa: E402
from rerank_utils.evaluation.reports import evaluate_rerankers, fusion_search  # noqa: E402
from rerank_utils.evaluation.significance import compare
from rerank_utils.evaluation.split_seeds import interval_rows, markdown, seed_benchmark_main, seed_rows  # noqa: E402
from rerank_utils.models.loading import load_bi_encoder  # noqa: E402
from rerank_utils.retrieval.dense import DenseRetriever  # noqa: E402
from rerank_utils.retrieval.reranking import fuse_with_first_stage  # noqa: E402
from rerank_utils.training.recipe_values import retriever_recipe_from_values  # noqa: E402
from rerank_utils.training.recipes import FirstStages, train_recipe
from rerank_utils.training.retriever import fine_tune_retriever  # noqa: E402

OUT = Path(__file__).parent / "results" / "retriever_vs_reranker.json"
TOP_K = 20


def _ci(c) -> list[float]:
    return [round(c.diff, 4), round(c.low, 4), round(c.high, 4)]


def run_seed(seed: int, workdir: Path) -> dict:
    ds = build_dataset("faq-en")
    splits = split_dataset(ds, seed=seed)
    train, val, test = splits["train"], splits["val"], splits["test"]
    bridge = recipe_for(load_config(profile="cpu"), "bridge")
    out: dict = {"seed": seed, "sizes": {k: len(v) for k, v in splits.items()}, "bridge_recipe": bridge.to_dict(), "seconds": {}}

    t = time.perf_counter()
    retr = fine_tune_retriever(train, val, workdir / "retriever",
                               retriever_recipe_from_values(seed))
    out["seconds"]["retriever"] = round(time.perf_counter() - t, 1)
    out["retriever"] = {k: retr.facts[k] for k in ("base_validation_ndcg@10", "validation_by_epoch", "best_epoch", "best_validation_ndcg@10")}

    base_stages = FirstStages(train.corpus, load_bi_encoder("default"))
    ft_stages = FirstStages(train.corpus, retr.model)  # mining and validation on the fine-tuned retriever

    t = time.perf_counter()
    from_base = train_recipe(bridge, train, val, base_stages, workdir / "bridge", base_model="default", top_k=TOP_K)
    out["seconds"]["bridge"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    from_ft = train_recipe(bridge, train, val, ft_stages, workdir / "bridge_from_ft", base_model=str(retr.model_dir), top_k=TOP_K)
    out["seconds"]["bridge_from_ft"] = round(time.perf_counter() - t, 1)
    out["val_best"] = {"bridge": from_base.result.best_metric, "bridge from fine-tuned": from_ft.result.best_metric}

    def runs(qs):
        r = base_stages.runs(qs, top_k=TOP_K)
        r["fine-tuned bi-encoder"] = DenseRetriever(train.corpus, retr.model).search(qs, top_k=TOP_K)
        return r

    rerankers = {"bridge": from_base.model, "bridge from fine-tuned": from_ft.model}
    val_ev = evaluate_rerankers(rerankers, val, runs(val.queries), top_k=TOP_K, metrics=("ndcg@10",))
    out["val"] = {k: round(r.aggregate["ndcg@10"], 4) for k, r in val_ev.results.items()}
    t = time.perf_counter()
    ev = evaluate_rerankers(rerankers, test, runs(test.queries), top_k=TOP_K, metrics=("ndcg@10", "recall@20", "mrr@10"))
    out["seconds"]["test_evaluation"] = round(time.perf_counter() - t, 1)
    out["test"] = {k: {m: round(v, 4) for m, v in r.aggregate.items()} for k, r in ev.results.items()}
    res = ev.results

    # fusion with the fine-tuned retriever's scores, weight chosen on validation
    val_ft = runs(val.queries)["fine-tuned bi-encoder"]
    test_ft = ev.runs["fine-tuned bi-encoder"]
    out["fusion"] = {}
    for label, model in rerankers.items():
        w, by_w = fusion_search(model, val, val_ft, top_k=TOP_K)
        fused = evaluate_run(fuse_with_first_stage(ev.runs[f"fine-tuned bi-encoder + {label}"], test_ft, w, top_k=TOP_K), test.qrels, ["ndcg@10"])
        name = f"fine-tuned bi-encoder + {label}, fused"  # its weight, chosen on validation: out["fusion"]
        res[name] = fused
        out["fusion"][label] = {"weight": w, "val_by_weight": {str(k): round(v, 4) for k, v in by_w.items()}}
        out["test"][name] = {"ndcg@10": round(fused.aggregate["ndcg@10"], 4)}

    ft = res["fine-tuned bi-encoder"]
    out["intervals"] = {
        "fine-tuned bi-encoder vs bi-encoder": _ci(compare(res["bi-encoder"], ft, seed=seed)),
        "fine-tuned bi-encoder vs bi-encoder + bridge": _ci(compare(res["bi-encoder + bridge"], ft, seed=seed)),
        "bi-encoder + bridge vs bi-encoder": _ci(compare(res["bi-encoder"], res["bi-encoder + bridge"], seed=seed)),
        "BM25 + bridge vs BM25": _ci(compare(res["BM25"], res["BM25 + bridge"], seed=seed)),
        **{f"{name} vs fine-tuned bi-encoder": _ci(compare(ft, res[name], seed=seed))
           for name in res if name.startswith("fine-tuned bi-encoder + ")},
    }
    strongest = max((n for n in res), key=lambda n: res[n].aggregate["ndcg@10"])
    out["strongest"] = strongest
    return out


def table(done: dict) -> str:
    """Test NDCG@10 per seed and each paired difference's interval per seed, with mean and range (rerank_utils.evaluation.split_seeds)."""
    parts = ["test NDCG@10", markdown(seed_rows(done))]
    parts += ["paired differences on test, 95 % intervals", markdown(interval_rows(done))]
    return "\n\n".join(parts)


def main() -> None:
    seed_benchmark_main(__doc__, OUT, run_seed, table, workdir="artifacts/bench/retriever_vs_reranker")


if __name__ == "__main__":
    main()
