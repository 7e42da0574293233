"""A *recipe* = how negatives are mined + how the model is trained. Train one, and judge it on the
validation queries (choices) or the test queries (the reported result, with intervals).

Used by notebooks ``02_negative_mining`` and ``03_fine_tuning`` and by ``benchmarks/recipe_search.py``,
so the search, the notebooks and the profile's default recipe run the same code.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .data import RetrievalDataset
from .evaluation import EvalResult, PairedComparison, compare, evaluate_run
from .mining import MiningConfig, MiningReport, mine_negatives
from .reranking import rerank_run
from .retrieval import BM25Retriever, DenseRetriever
from .training import FineTuneResult, TrainingConfig, fine_tune, reranking_samples, training_rows

ARCHITECTURES = ("standard", "bridge")
METRICS = ("hit@1", "hit@3", "hit@5", "mrr@10", "ndcg@10", "recall@20")


@dataclass
class Recipe:
    name: str
    mining: MiningConfig = field(default_factory=MiningConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    train_queries: int | None = None  # train on a seeded sample of this many queries (None: all)
    architecture: str = "standard"  # "standard" cross-encoder (new scoring head) or "bridge" (rerank_utils.bridge)
    bridge: dict | None = None  # build_bridge_reranker options: bias_mode, bias_start, scale_start

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"Recipe {self.name!r}: architecture={self.architecture!r}, choose one of {', '.join(ARCHITECTURES)}")
        if self.bridge and self.architecture != "bridge":
            raise ValueError(f"Recipe {self.name!r}: bridge options given for architecture={self.architecture!r}")

    def to_dict(self) -> dict:
        out = {"name": self.name, "mining": asdict(self.mining), "training": asdict(self.training), "train_queries": self.train_queries}
        if self.architecture != "standard":
            out.update(architecture=self.architecture, bridge=dict(self.bridge or {}))
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """The recipe :meth:`to_dict` wrote (e.g. into a saved model's ``training.json``)."""
        known = {"name", "mining", "training", "train_queries", "architecture", "bridge"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"Recipe.from_dict: unknown keys {sorted(unknown)}; expected some of {sorted(known)}")
        return cls(
            d["name"], MiningConfig(**d.get("mining", {})), TrainingConfig(**d.get("training", {})), d.get("train_queries"),
            d.get("architecture", "standard"), d.get("bridge") or None,
        )

    def build_model(self, base_model: str = "default", device: str | None = None):
        """The model training starts from: ``base_model`` itself (a name) for the standard cross-encoder,
        a fresh bridge reranker over it for the bridge."""
        if self.architecture == "standard":
            return base_model
        from .bridge import build_bridge_reranker

        return build_bridge_reranker(base_model, max_seq_length=self.training.max_length, device=device, **(self.bridge or {}))

    def start_model(self, base_model: str = "default", device: str | None = None):
        """The model training starts from, loaded: a ``CrossEncoder`` for both architectures (the standard
        one from ``base_model`` with the recipe's ``max_length``), e.g. the "base" row of a before/after
        table. Introduced in notebook ``10_qasper_case_study``."""
        built = self.build_model(base_model, device)
        if not isinstance(built, str):
            return built
        from .models import load_cross_encoder

        return load_cross_encoder(built, device=device, max_length=self.training.max_length)


class FirstStages:
    """BM25 and the bi-encoder over one corpus, built once and shared by mining, validation and tests."""

    def __init__(self, corpus: dict[str, str], bi_encoder, lang: str = "auto", batch_size: int = 64):
        self.corpus = corpus
        self.bm25 = BM25Retriever(corpus, lang=lang)
        self.dense = DenseRetriever(corpus, bi_encoder, batch_size=batch_size)

    def runs(self, queries: dict[str, str], top_k: int = 20) -> dict[str, dict]:
        """``{"BM25": run, "bi-encoder": run}`` for ``queries``."""
        return {"BM25": self.bm25.search(queries, top_k=top_k), "bi-encoder": self.dense.search(queries, top_k=top_k)}

    def retriever_for(self, mining: MiningConfig):
        source = mining.source
        return {"dense": self.dense, "bm25": self.bm25}.get(source) if source else None


@dataclass
class RecipeRun:
    recipe: Recipe
    result: FineTuneResult
    mining_report: MiningReport
    mining_seconds: float
    val_first_stage_ndcg: float

    @property
    def model(self):
        return self.result.model

    def row(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.name,
            "val ndcg@10 (best)": self.result.best_metric,
            "first stage val ndcg@10": self.val_first_stage_ndcg,
            "train s": round(self.result.train_seconds, 1),
            "pairs/s": round(self.result.pairs_per_second, 1),
            "epochs run": max((h.get("epoch", 0) for h in self.result.history), default=0),
        }


def train_recipe(
    recipe: Recipe,
    train: RetrievalDataset,
    val: RetrievalDataset,
    first_stages: FirstStages,
    output_dir: str | Path,
    base_model: str = "default",
    val_first_stage: str = "bi-encoder",
    top_k: int = 20,
    device: str | None = None,
    show_progress: bool = False,
    card: dict | None = None,
) -> RecipeRun:
    """Mine negatives for ``train`` as the recipe says, fine-tune, and validate by reranking the
    validation queries' ``val_first_stage`` top-``top_k`` (NDCG@10) after each epoch."""
    if recipe.train_queries:
        train = train.sample(recipe.train_queries, seed=recipe.mining.seed)
    t0 = time.perf_counter()
    mined = mine_negatives(train, recipe.mining, retriever=first_stages.retriever_for(recipe.mining))
    mining_seconds = time.perf_counter() - t0
    rows = training_rows(train, mined.negatives, recipe.training.loss)
    val_runs = first_stages.runs(val.queries, top_k=top_k)
    samples = reranking_samples(val, val_runs[val_first_stage], top_k=top_k)
    first_ndcg = evaluate_run(val_runs[val_first_stage], val.qrels, ["ndcg@10"]).aggregate["ndcg@10"]
    info = {"base_model": base_model, "data": f"{train.name}: {len(train)} training queries, {len(rows)} rows", "recipe": recipe.to_dict()}
    result = fine_tune(
        recipe.build_model(base_model, device), rows, output_dir, recipe.training, val_samples=samples, device=device,
        show_progress=show_progress, card={**info, **(card or {})},
    )
    return RecipeRun(recipe, result, mined.report, mining_seconds, first_ndcg)


def _normalised(recipe_dict: dict) -> str:
    import json

    d = json.loads(json.dumps(recipe_dict, default=str))
    d.pop("name", None)
    return json.dumps(d, sort_keys=True)


def load_or_train_recipe(
    recipe: Recipe,
    train: RetrievalDataset,
    val: RetrievalDataset,
    first_stages: FirstStages,
    output_dir: str | Path,
    base_model: str = "default",
    top_k: int = 20,
    device: str | None = None,
) -> tuple[Any, dict, bool]:
    """``(model, training facts, loaded)``: the model an earlier notebook saved in ``output_dir`` when its
    ``training.json`` records this very recipe (``loaded=True``), else a fresh :func:`train_recipe` run saved
    there. The facts are ``training.json``'s: curves, best validation NDCG@10, seconds, the recipe.

    Introduced in notebook ``14_bridge_reranker`` (which reuses the bridge notebook 03 trained)."""
    import json

    from .models import load_cross_encoder

    output_dir = Path(output_dir)
    facts_path = output_dir / "training.json"
    if facts_path.is_file():
        facts = json.loads(facts_path.read_text(encoding="utf-8"))
        same_base = str(facts.get("base_model")) == str(base_model)
        if same_base and "recipe" in facts and _normalised(facts["recipe"]) == _normalised(recipe.to_dict()):
            return load_cross_encoder(str(output_dir), device=device), facts, True
    run = train_recipe(recipe, train, val, first_stages, output_dir, base_model, top_k=top_k, device=device)
    return run.model, json.loads(facts_path.read_text(encoding="utf-8")), False


@dataclass
class RerankEvaluation:
    """Every first stage alone and reranked, on the same queries, with paired comparisons."""

    results: dict[str, EvalResult]
    comparisons: dict[str, PairedComparison]
    runs: dict[str, dict]

    def table(self, metrics=METRICS):
        import pandas as pd

        return pd.DataFrame({name: {m: r.aggregate[m] for m in metrics} for name, r in self.results.items()}).T

    def comparison_table(self):
        return comparison_frame(self.comparisons)


def comparison_frame(comparisons: dict[str, PairedComparison]):
    """Paired comparisons as the guide's before/after table: before, after, absolute and relative change,
    the 95 % interval, p, per-query wins and losses."""
    import pandas as pd

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
) -> RerankEvaluation:
    """Each first stage alone vs its top-``top_k`` reranked by ``model``; paired bootstrap intervals."""
    results, comparisons, runs = {}, {}, {}
    for name, run in first_stage_runs.items():
        alone = evaluate_run(run, ds.qrels, list(metrics))
        reranked_run = rerank_run(model, ds, run, top_k=top_k, batch_size=batch_size)
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
) -> RerankEvaluation:
    """One table for several rerankers on the same queries: each first stage alone, and its top-``top_k``
    reranked by each model (``{label: model}``), with paired intervals against the first stage alone and,
    for every two rerankers over the same first stage, between them (``"X + b vs X + a"``: b minus a).

    Introduced in notebook ``14_bridge_reranker``."""
    if not rerankers:
        raise ValueError("evaluate_rerankers: no rerankers given")
    results, comparisons, runs = {}, {}, {}
    for label, model in rerankers.items():
        ev = evaluate_reranker(model, ds, first_stage_runs, top_k, metrics, label, batch_size, seed)
        for name in first_stage_runs:  # the first stage alone: once, first
            results.setdefault(name, ev.results[name])
            runs.setdefault(name, ev.runs[name])
        results.update({k: v for k, v in ev.results.items() if k not in first_stage_runs})
        runs.update({k: v for k, v in ev.runs.items() if k not in first_stage_runs})
        comparisons.update(ev.comparisons)
    labels = list(rerankers)
    for name in first_stage_runs:
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                comparisons[f"{name} + {b} vs {name} + {a}"] = compare(
                    results[f"{name} + {a}"], results[f"{name} + {b}"], "ndcg@10", seed=seed
                )
    order = list(first_stage_runs) + [f"{n} + {label}" for label in labels for n in first_stage_runs]
    return RerankEvaluation({k: results[k] for k in order}, comparisons, runs)


def compare_negative_strategies(
    strategies: list[str],
    mining: MiningConfig,
    training: TrainingConfig,
    train: RetrievalDataset,
    val: RetrievalDataset,
    first_stages: FirstStages,
    workdir: str | Path,
    base_model: str = "default",
    train_queries: int | None = None,
    top_k: int = 20,
    device: str | None = None,
):
    """Fine-tune once per negative strategy (everything else equal) and score each on validation:
    NDCG@10 of reranking BM25's and the bi-encoder's top-``top_k``. Returns a DataFrame (notebook 02)."""
    import pandas as pd
    from dataclasses import replace

    val_runs = first_stages.runs(val.queries, top_k=top_k)
    rows = {}
    for strategy in strategies:
        recipe = Recipe(strategy, replace(mining, strategy=strategy), training, train_queries)
        run = train_recipe(recipe, train, val, first_stages, Path(workdir) / strategy, base_model, top_k=top_k, device=device)
        ev = evaluate_reranker(run.model, val, val_runs, top_k=top_k)
        rows[strategy] = {
            "val NDCG@10, BM25 + CE": ev.results["BM25 + reranker"].aggregate["ndcg@10"],
            "val NDCG@10, bi-encoder + CE": ev.results["bi-encoder + reranker"].aggregate["ndcg@10"],
            "train s": round(run.result.train_seconds, 1),
            "final train loss": next((h["loss"] for h in reversed(run.result.history) if "loss" in h), None),
        }
    for name in ("BM25", "bi-encoder"):
        rows[f"{name} alone (no reranker)"] = {
            f"val NDCG@10, {name} + CE": evaluate_run(val_runs[name], val.qrels, ["ndcg@10"]).aggregate["ndcg@10"]
        }
    return pd.DataFrame(rows).T


def fusion_search(
    model, val: RetrievalDataset, val_run: dict, weights=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), top_k: int = 20
) -> tuple[float, dict[float, float]]:
    """Choose the weight of the reranker's z-scored score against the first stage's on VALIDATION:
    returns ``(best weight, {weight: val NDCG@10})``. Weight 1.0 is the reranker alone, 0.0 the first stage."""
    from .reranking import fuse_with_first_stage

    ce_run = rerank_run(model, val, val_run, top_k=top_k)
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
    import json

    import pandas as pd

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


def learning_curve(
    recipe: Recipe,
    sizes,
    train: RetrievalDataset,
    val: RetrievalDataset,
    test: RetrievalDataset,
    first_stages: FirstStages,
    workdir: str | Path,
    base_model: str = "default",
    top_k: int = 20,
    device: str | None = None,
    extra_first_stages: Mapping[int, Mapping[str, Any]] | None = None,
) -> list[dict]:
    """The guide's "1000-5000 samples are enough", tested: train ``recipe`` on a seeded sample of each of
    ``sizes`` training queries and score each model by reranking the test queries' bi-encoder and BM25
    top-``top_k``. Rows ``{train_queries, labelled_pairs, val_best, test NDCG@10 bi+CE, test NDCG@10 BM25+CE,
    train_s}``; ``labelled_pairs`` (the guide's "samples") is queries x (1 positive + the recipe's negatives),
    give or take the few queries with two positives. ``extra_first_stages[n]`` maps names to more first stages
    (searchable over the test corpus) that the model trained on ``n`` queries also reranks, as
    ``test NDCG@10 <name>+CE``: the retriever fine-tuned on the same queries
    (:func:`rerank_utils.retriever_training.retriever_learning_curve`), so the curve shows the labels spent on
    the retriever, on the reranker, and on both. Introduced in notebook ``04_evaluation``."""
    from dataclasses import replace

    test_runs = first_stages.runs(test.queries, top_k=top_k)
    rows = []
    for n in sizes:
        n = min(int(n), len(train))
        r = replace(recipe, name=f"{recipe.name}-{n}q", train_queries=n)
        run = train_recipe(r, train, val, first_stages, Path(workdir) / f"{n}q", base_model, top_k=top_k, device=device)
        extra = dict((extra_first_stages or {}).get(n, {}))
        runs = {**test_runs, **{name: fs.search(test.queries, top_k=top_k) for name, fs in extra.items()}}
        ev = evaluate_reranker(run.model, test, runs, top_k=top_k, metrics=("ndcg@10",))
        rows.append({
            "train_queries": n,
            "labelled_pairs": n * (1 + r.mining.num_negatives),
            "val_best": run.result.best_metric,
            "test NDCG@10 bi+CE": ev.results["bi-encoder + reranker"].aggregate["ndcg@10"],
            "test NDCG@10 BM25+CE": ev.results["BM25 + reranker"].aggregate["ndcg@10"],
            **{f"test NDCG@10 {name}+CE": ev.results[f"{name} + reranker"].aggregate["ndcg@10"] for name in extra},
            "train_s": run.result.train_seconds,
        })
    return rows


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
