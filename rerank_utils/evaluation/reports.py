"""The tables and verdicts notebooks 02, 03, 04 and 14 and ``rerank-utils evaluate`` report: rerankers evaluated on
first-stage runs with paired comparisons (:func:`evaluate_rerankers`, :func:`comparison_frame`), the fusion search,
the gate verdict, the recipe-search table, the guide's "+10-30 %" claim checked, and the verdict against the
strongest row (:func:`strongest_verdict`: a gain is claimed over the fine-tuned retriever, not the weakest baseline).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.evaluation.metrics import EvalResult, evaluate_run
from rerank_utils.evaluation.significance import PairedComparison, compare
from rerank_utils.retrieval.reranking import fuse_with_first_stage, rerank_run

#: The columns of the comparison tables of notebooks 03/04 and `rerank-utils evaluate`.
METRICS = ("hit@1", "hit@3", "hit@5", "mrr@10", "ndcg@10", "recall@20")


@dataclass
class RerankEvaluation:
    """Every first stage alone and reranked, on the same queries, with paired comparisons."""
    results: dict[str, EvalResult]
    comparisons: dict[str, PairedComparison]
    runs: dict[str, dict]

    def table(self, metrics=METRICS):
        return pd.DataFrame({name: {m: r.aggregate[m] for m in metrics} for name, r in self.results.items()}).T

    def comparison_table(self):
        return comparison_frame(self.comparisons)


def comparison_frame(comparisons: dict[str, PairedComparison]):
    """Paired comparisons as the guide's before/after table: before, after, absolute and relative change,
    the 95 % interval, p, per-query wins and losses."""
    return pd.DataFrame(
        {
            name: {
                "NDCG@10 before": c.mean_a, "NDCG@10 after": c.mean_b, "difference": c.diff,
                "relative": c.diff / c.mean_a if c.mean_a else float("nan"),
                "95% CI low": c.low, "95% CI high": c.high, "p": c.p_value,
                "wins": c.wins, "losses": c.losses, "significant": c.significant,
            }
            for name, c in comparisons.items()
        }
    ).T


def evaluate_reranker(
    model,
    ds: RetrievalDataset,
    first_stage_runs: dict[str, dict],
    top_k: int = 20,
    metrics=METRICS,
    label: str = "reranker",
    batch_size: int = 32,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> RerankEvaluation:
    """Each first stage alone vs its top-``top_k`` reranked by ``model``; paired bootstrap intervals. A pair that
    two first stages share is scored once (``rerank_run(memo=True)``). ``log`` (``print``, say) gets a line per
    reranked first stage: its pairs and seconds."""
    results, comparisons, runs = {}, {}, {}
    for name, run in first_stage_runs.items():
        alone = evaluate_run(run, ds.qrels, list(metrics))
        t0 = time.perf_counter()
        reranked_run = rerank_run(model, ds, run, top_k=top_k, batch_size=batch_size, memo=True)
        if log is not None:
            pairs = sum(len(r) for r in reranked_run.values())
            log(f"  {label}: {name}'s top-{top_k} reranked ({pairs} pairs) in {time.perf_counter() - t0:.1f} s")
        reranked = evaluate_run(reranked_run, ds.qrels, list(metrics))
        results[name] = alone
        results[f"{name} + {label}"] = reranked
        runs[name], runs[f"{name} + {label}"] = run, reranked_run
        comparisons[f"{name} + {label} vs {name}"] = compare(alone, reranked, "ndcg@10", seed=seed)
    return RerankEvaluation(results, comparisons, runs)


def evaluate_rerankers(
    rerankers: dict[str, Any],
    ds: RetrievalDataset,
    first_stage_runs: dict[str, dict],
    top_k: int = 20,
    metrics=METRICS,
    batch_size: int = 32,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> RerankEvaluation:
    """One table for several rerankers on the same queries: each first stage alone, and its top-``top_k``
    reranked by each model (``{label: model}``), with paired intervals against the first stage alone and,
    for every two rerankers over the same first stage, between them (``"X + b vs X + a"``: b minus a).

    ``log`` gets :func:`evaluate_reranker`'s lines and, after each model, how many are done and roughly how long the
    rest will take. Introduced in notebook ``14_bridge_reranker``."""
    if not rerankers:
        raise ValueError("evaluate_rerankers: no rerankers given")
    results, comparisons, runs = {}, {}, {}
    started = time.perf_counter()
    for i, (label, model) in enumerate(rerankers.items(), start=1):
        ev = evaluate_reranker(model, ds, first_stage_runs, top_k, metrics, label, batch_size, seed, log=log)
        if log is not None:
            spent = time.perf_counter() - started
            left = spent / i * (len(rerankers) - i)
            log(f"{i}/{len(rerankers)} models evaluated in {spent:.0f} s" + (f", about {left:.0f} s left" if i < len(rerankers) else ""))
        for name in first_stage_runs:  # the first stage alone: once, first
            results.setdefault(name, ev.results[name])
            runs.setdefault(name, ev.runs[name])
        results.update({k: v for k, v in ev.results.items() if k not in first_stage_runs})
        runs.update({k: v for k, v in ev.runs.items() if k not in first_stage_runs})
        comparisons.update(ev.comparisons)
    labels = list(rerankers)
    for name in first_stage_runs:
        for a, b in combinations(labels, 2):
            comparisons[f"{name} + {b} vs {name} + {a}"] = compare(
                results[f"{name} + {a}"], results[f"{name} + {b}"], "ndcg@10", seed=seed)
    order = list(first_stage_runs) + [f"{n} + {label}" for label in labels for n in first_stage_runs]
    return RerankEvaluation({k: results[k] for k in order}, comparisons, runs)


def fusion_search(
    model, val: RetrievalDataset, val_run: dict, weights=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), top_k: int = 20
) -> tuple[float, dict[float, float]]:
    """Choose the weight of the reranker's z-scored score against the first stage's on VALIDATION:
    returns ``(best weight, {weight: val NDCG@10})``. Weight 1.0 is the reranker alone, 0.0 the first stage."""
    ce_run = rerank_run(model, val, val_run, top_k=top_k, memo=True)
    scores = {}
    for w in weights:
        fused = fuse_with_first_stage(ce_run, val_run, w, top_k=top_k)
        scores[w] = evaluate_run(fused, val.qrels, ["ndcg@10"]).aggregate["ndcg@10"]
    best = max(scores, key=lambda w: (scores[w], -abs(w - 0.5)))
    return best, scores


def gate_verdict(ev: RerankEvaluation, label: str = "reranker") -> str:
    """The plain-language verdict on the fine-tuning gate (issue 3): (a) BM25 top-20 reranked beats BM25
    with the interval above zero; (b) the bi-encoder top-20 reranked against the bi-encoder alone."""
    a = ev.comparisons[f"BM25 + {label} vs BM25"]
    b = ev.comparisons[f"bi-encoder + {label} vs bi-encoder"]

    def say(c: PairedComparison) -> str:
        if c.low > 0:
            return f"better, and the 95 % interval [{c.low:+.3f}, {c.high:+.3f}] is above zero"
        if c.high < 0:
            return f"worse: the 95 % interval [{c.low:+.3f}, {c.high:+.3f}] is below zero"
        return f"not distinguishable: the 95 % interval [{c.low:+.3f}, {c.high:+.3f}] contains zero"

    return (
        f"(a) BM25 top-20 reranked: NDCG@10 {a.mean_a:.3f} -> {a.mean_b:.3f} ({a.diff:+.3f}): {say(a)}. "
        f"Gate (a) {'HOLDS' if a.low > 0 else 'does NOT hold'}.\n"
        f"(b) bi-encoder top-20 reranked: NDCG@10 {b.mean_a:.3f} -> {b.mean_b:.3f} ({b.diff:+.3f}): {say(b)}. "
        f"The stretch goal (b) {'HOLDS' if b.low > 0 else 'does NOT hold'}."
    )


def search_table(path: str | Path):
    """The recipe search's results (``benchmarks/recipe_search.py``) as a DataFrame, best validation first;
    ``None`` when the search has not been run."""
    path = Path(path)
    if not path.is_file():
        return None
    done = json.loads(path.read_text(encoding="utf-8"))
    rows = {}
    for name, r in done.items():
        ti = r["test_intervals"]
        rows[name] = {
            "architecture": r["recipe"].get("architecture", "standard"),
            "val (mean of BM25+CE, bi+CE)": r["val_score"],
            "test BM25+CE": r["test"]["BM25 + reranker"],
            "test BM25+CE - BM25 [95% CI]": "{:+.3f} [{:+.3f}, {:+.3f}]".format(*ti["BM25 + reranker vs BM25"][:3]),
            "test bi+CE": r["test"]["bi-encoder + reranker"],
            "test bi+CE - bi [95% CI]": "{:+.3f} [{:+.3f}, {:+.3f}]".format(*ti["bi-encoder + reranker vs bi-encoder"][:3]),
            "train s": round(r["train_seconds"]),
        }
    return pd.DataFrame(rows).T.sort_values("val (mean of BM25+CE, bi+CE)", ascending=False)


def guide_claim(comparisons: dict[str, PairedComparison], low: float = 0.10, high: float = 0.30) -> dict[str, str]:
    """The guide's "fine-tuning usually adds +10-30 %", checked: each comparison's relative change in NDCG@10
    with its interval, and whether it falls inside ``[low, high]``. Introduced in notebook ``04_evaluation``."""
    out = {}
    for name, c in comparisons.items():
        if not c.mean_a:
            out[name] = "no relative change: the baseline scores 0"
            continue
        rel, lo, hi = c.diff / c.mean_a, c.low / c.mean_a, c.high / c.mean_a
        where = "inside" if low <= rel <= high else "outside"
        out[name] = f"{rel:+.0%} (95 % interval {lo:+.0%} to {hi:+.0%}): {where} the guide's {low:+.0%} to {high:+.0%}"
    return out


def strongest_verdict(results: dict, comparisons: dict, reranked: str, retriever: str = "fine-tuned bi-encoder",
                      metric: str = "ndcg@10") -> str:
    """The plain-language verdict of issue 12, stated against the strongest row: which pipeline scores best,
    and whether ``reranked`` (a first stage + the reranker) beats the fine-tuned ``retriever`` alone with its
    paired interval above zero. ``results`` maps row names to :class:`~rerank_utils.evaluation.metrics.EvalResult`;
    ``comparisons`` must hold ``"<reranked> vs <retriever>"``."""
    best = max(results, key=lambda n: results[n].aggregate[metric])
    c = comparisons[f"{reranked} vs {retriever}"]
    if c.low > 0:
        how = f"adds {c.diff:+.3f} NDCG@10 on top of it, 95 % interval [{c.low:+.3f}, {c.high:+.3f}] above zero: the reranker pays"
    elif c.high < 0:
        how = f"is worse by {c.diff:+.3f} [{c.low:+.3f}, {c.high:+.3f}]: spend the labels on the retriever"
    else:
        how = (f"changes NDCG@10 by {c.diff:+.3f} [{c.low:+.3f}, {c.high:+.3f}], not distinguishable from zero: over the "
               f"fine-tuned retriever the reranker adds latency, not measurable quality")
    return (f"strongest row: {best} (NDCG@10 {results[best].aggregate[metric]:.3f}). {retriever} alone scores "
            f"{results[retriever].aggregate[metric]:.3f}; {reranked} {how}.")
