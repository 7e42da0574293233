"""The search of issue 12: can any reranker add on top of the FINE-TUNED retriever? Validation picks, test reports.

benchmarks/retriever_vs_reranker.py measured the bridge (from the base model and from the fine-tuned one) and
its fusion with the fine-tuned retriever. This script measures the late-interaction direction on the same
splits, every variant with its validation and test NDCG@10 and, on test, its paired-bootstrap 95 % interval
against the fine-tuned retriever alone:

  * MaxSim over the fine-tuned retriever's own token embeddings, untrained (rerank_utils.models.late_interaction);
  * the same encoder trained as a late-interaction model (sentence-transformers' MultiVectorEncoderTrainer,
    MultiVectorMultipleNegativesRankingLoss, negatives mined from the fine-tuned retriever's top-10, best epoch
    on validation);
  * the same, first trained one epoch on pseudo-queries cut from the corpus (rerank_utils.training.pseudo_queries: a
    sentence as the query, its passage without it as the positive; no labels), then the labelled epochs;
  * each fused with the fine-tuned retriever's scores, the weight chosen on validation.

The fine-tuned retriever of each seed is the one retriever_vs_reranker.py trains (same recipe, same folder:
reused when it is there). Results: benchmarks/results/reranker_search.json, one entry per seed.

    .venv/bin/python benchmarks/reranker_search.py --seeds 42 43 44      # about 10 min a seed on 2 cores
    .venv/bin/python benchmarks/reranker_search.py --table
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rerank_utils.data.sources import build_dataset  # noqa: E402
from rerank_utils.data.splits import split_dataset  # noqa: E402
from rerank_utils.evaluation.metrics import evaluate_run  # noqa: E402
from rerank_utils.evaluation.reports import fusion_search  # noqa: E402
from rerank_utils.evaluation.significance import compare
from rerank_utils.evaluation.split_seeds import interval_rows, markdown, seed_benchmark_main, seed_rows  # noqa: E402
from rerank_utils.models.late_interaction import MaxSimReranker
from rerank_utils.retrieval.dense import DenseRetriever  # noqa: E402
from rerank_utils.retrieval.reranking import fuse_with_first_stage, rerank_run  # noqa: E402
from rerank_utils.training.late_interaction import fine_tune_late_interaction  # noqa: E402
from rerank_utils.training.mining import MiningConfig, mine_negatives  # noqa: E402
from rerank_utils.training.pseudo_queries import inverse_cloze, without_sources  # noqa: E402
from rerank_utils.training.recipe_values import retriever_recipe_from_values  # noqa: E402
from rerank_utils.training.retriever import load_or_train_retriever  # noqa: E402

OUT = Path(__file__).parent / "results" / "reranker_search.json"
TOP_K = 20
FT = "fine-tuned bi-encoder"


def run_seed(seed: int, workdir: Path) -> dict:
    splits = split_dataset(build_dataset("faq-en"), seed=seed)
    train, val, test = splits["train"], splits["val"], splits["test"]
    out: dict = {"seed": seed, "sizes": {k: len(v) for k, v in splits.items()}, "val": {}, "test": {}, "intervals": {},
                 "seconds": {}, "facts": {}}
    recipe = retriever_recipe_from_values(seed)  # retriever_vs_reranker's
    retr = load_or_train_retriever(train, val, workdir / "retriever", recipe, base_model="default")
    dense = DenseRetriever(train.corpus, retr.model)
    val_run, test_run = dense.search(val.queries, top_k=TOP_K), dense.search(test.queries, top_k=TOP_K)
    test_ft = evaluate_run(test_run, test.qrels, ["ndcg@10"])
    out["val"][FT] = round(evaluate_run(val_run, val.qrels, ["ndcg@10"]).aggregate["ndcg@10"], 4)
    out["test"][FT] = round(test_ft.aggregate["ndcg@10"], 4)

    rerankers = {"MaxSim (untrained)": MaxSimReranker.from_model(retr.model_dir)}
    mined = mine_negatives(train, MiningConfig("dense", num_negatives=3, range_max=10, seed=seed), retriever=dense)
    t = time.perf_counter()
    li, facts = fine_tune_late_interaction(train, val, val_run, workdir / "late_interaction", mined.negatives,
                                           base_model=retr.model_dir, epochs=2, seed=seed)
    out["seconds"]["late_interaction"] = round(time.perf_counter() - t, 1)
    out["facts"]["late_interaction"] = {k: facts[k] for k in ("base_validation_ndcg@10", "validation_by_epoch", "best_epoch", "triples")}
    rerankers["late interaction (trained)"] = li

    # pseudo-queries first (inverse cloze over the whole corpus, no labels), then the same labelled epochs
    ict = inverse_cloze(train.corpus, seed=seed)
    ict_mined = mine_negatives(ict, MiningConfig("dense", num_negatives=1, range_max=10, seed=seed), retriever=DenseRetriever(ict.corpus, retr.model))
    t = time.perf_counter()
    pre, pre_facts = fine_tune_late_interaction(ict, val, val_run, workdir / "late_interaction_ict", without_sources(ict, ict_mined.negatives),
                                                base_model=retr.model_dir, epochs=1, seed=seed)
    li_ict, ict_facts = fine_tune_late_interaction(train, val, val_run, workdir / "late_interaction_ict_then_labels", mined.negatives,
                                                   base_model=pre, epochs=2, seed=seed)
    out["seconds"]["late_interaction_ict"] = round(time.perf_counter() - t, 1)
    out["facts"]["pseudo-queries"] = {"queries": len(ict), **{k: pre_facts[k] for k in ("base_validation_ndcg@10", "validation_by_epoch", "best_epoch")}}
    out["facts"]["late_interaction_ict"] = {k: ict_facts[k] for k in ("base_validation_ndcg@10", "validation_by_epoch", "best_epoch")}
    rerankers["late interaction (pseudo-queries, then labels)"] = li_ict

    for label, model in rerankers.items():
        name = f"{FT} + {label}"
        t = time.perf_counter()
        reranked = rerank_run(model, test, test_run, top_k=TOP_K)
        out["seconds"][f"test {label} (ms/query, batched)"] = round(1000 * (time.perf_counter() - t) / len(test.queries), 1)
        res = evaluate_run(reranked, test.qrels, ["ndcg@10"])
        w, by_w = fusion_search(model, val, val_run, top_k=TOP_K)
        out["val"][name] = round(by_w[1.0], 4)
        out["test"][name] = round(res.aggregate["ndcg@10"], 4)
        c = compare(test_ft, res, seed=seed)
        out["intervals"][f"{name} vs {FT}"] = [round(c.diff, 4), round(c.low, 4), round(c.high, 4)]
        fused_name = f"{name}, fused"  # its weight, chosen on validation: out["fusion"]
        out.setdefault("fusion", {})[label] = {"weight": w, "val_by_weight": {str(k): round(v, 4) for k, v in by_w.items()}}
        fused = evaluate_run(fuse_with_first_stage(reranked, test_run, w, top_k=TOP_K), test.qrels, ["ndcg@10"])
        out["val"][fused_name] = round(by_w[w], 4)
        out["test"][fused_name] = round(fused.aggregate["ndcg@10"], 4)
        c = compare(test_ft, fused, seed=seed)
        out["intervals"][f"{fused_name} vs {FT}"] = [round(c.diff, 4), round(c.low, 4), round(c.high, 4)]
    return out


def table(done: dict) -> str:
    """Test NDCG@10 per seed and each paired difference's interval per seed, with mean and range (rerank_utils.evaluation.split_seeds)."""
    parts = ["test NDCG@10", markdown(seed_rows(done))]
    parts += ["validation NDCG@10 (what chooses)", markdown(seed_rows({s: {"test": d["val"]} for s, d in done.items()}))]
    parts += ["paired differences on test, 95 % intervals", markdown(interval_rows(done))]
    return "\n\n".join(parts)


def main() -> None:
    seed_benchmark_main(__doc__, OUT, run_seed, table, workdir="artifacts/bench/retriever_vs_reranker")


if __name__ == "__main__":
    main()
