"""A *recipe* = how negatives are mined + how the model is trained. Train one, and judge it on the
validation queries (choices) or the test queries (the reported result, with intervals).

Used by notebooks ``02_negative_mining`` and ``03_fine_tuning`` and by ``benchmarks/recipe_search.py``,
so the search, the notebooks and the profile's default recipe run the same code.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from rerank_utils.data.records import RetrievalDataset, data_fingerprint
from rerank_utils.evaluation.metrics import evaluate_run
from rerank_utils.models.bridge import build_bridge_reranker
from rerank_utils.models.calibration import CALIBRATION_FILE, calibrate_reranker, load_calibration
from rerank_utils.models.loading import load_cross_encoder
from rerank_utils.retrieval.bm25 import BM25Retriever
from rerank_utils.retrieval.dense import DenseRetriever
from rerank_utils.training.arguments import TrainingConfig
from rerank_utils.training.mining import MiningConfig, MiningReport, mine_negatives
from rerank_utils.training.recipe_schema import ARCHITECTURES
from rerank_utils.training.samples import reranking_samples, training_rows
from rerank_utils.training.trainer import FineTuneResult, fine_tune


@dataclass
class Recipe:
    name: str
    mining: MiningConfig = field(default_factory=MiningConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    train_queries: int | None = None  # train on a seeded sample of this many queries (None: all)
    architecture: str = "standard"  # "standard" cross-encoder (new scoring head) or "bridge" (rerank_utils.models.bridge)
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
        return build_bridge_reranker(base_model, max_seq_length=self.training.max_length, device=device, **(self.bridge or {}))

    def start_model(self, base_model: str = "default", device: str | None = None):
        """The model training starts from, loaded: a ``CrossEncoder`` for both architectures (the standard
        one from ``base_model`` with the recipe's ``max_length``), e.g. the "base" row of a before/after
        table. Introduced in notebook ``10_qasper_case_study``."""
        built = self.build_model(base_model, device)
        return load_cross_encoder(built, device=device, max_length=self.training.max_length) if isinstance(built, str) else built


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
        return {"dense": self.dense, "bm25": self.bm25}.get(mining.source)  # None for random negatives


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


def trained_on(recipe: Recipe, train: RetrievalDataset) -> RetrievalDataset:
    """The training queries ``recipe`` reads: all of ``train``, or its seeded sample of ``recipe.train_queries``."""
    return train.sample(recipe.train_queries, seed=recipe.mining.seed) if recipe.train_queries else train


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
    log: Callable[[str], None] | None = None,
) -> RecipeRun:
    """Mine negatives for ``train`` as the recipe says, fine-tune, and validate by reranking the
    validation queries' ``val_first_stage`` top-``top_k`` (NDCG@10) after each epoch; then fit the kept model's
    Platt calibration on those same validation candidates (``calibration.json`` beside it, also in ``training.json``)."""
    train = trained_on(recipe, train)
    t0 = time.perf_counter()
    mined = mine_negatives(train, recipe.mining, retriever=first_stages.retriever_for(recipe.mining))
    mining_seconds = time.perf_counter() - t0
    rows = training_rows(train, mined.negatives, recipe.training.loss)
    val_runs = first_stages.runs(val.queries, top_k=top_k)
    samples = reranking_samples(val, val_runs[val_first_stage], top_k=top_k)
    first_ndcg = evaluate_run(val_runs[val_first_stage], val.qrels, ["ndcg@10"]).aggregate["ndcg@10"]
    info = {"base_model": base_model, "data": f"{train.name}: {len(train)} training queries, {len(rows)} rows", "recipe": recipe.to_dict(),
            "data_fingerprint": data_fingerprint(train, val)}
    result = fine_tune(
        recipe.build_model(base_model, device), rows, output_dir, recipe.training, val_samples=samples, device=device,
        show_progress=show_progress, card={**info, **(card or {})}, log=log,
    )
    _calibrate(result.model, val, val_runs[val_first_stage], top_k, Path(output_dir), log)
    return RecipeRun(recipe, result, mined.report, mining_seconds, first_ndcg)


def _calibrate(model, val: RetrievalDataset, run: dict, top_k: int, output_dir: Path, log: Callable[[str], None] | None = None) -> dict:
    """Fit and save the model's calibration on validation (:mod:`rerank_utils.models.calibration`), recorded in
    ``training.json`` too. Validation candidates without a positive or without a negative (a tiny split) cannot be
    fitted: then the model has no ``calibration.json`` (served with a plain sigmoid), and the reason is recorded."""
    try:
        calibration = calibrate_reranker(model, val, run, top_k=top_k)
    except ValueError as exc:
        summary = {"skipped": f"{exc}; probabilities stay sigmoid(raw score)"}
        (output_dir / CALIBRATION_FILE).unlink(missing_ok=True)  # never a stale one from an earlier training
        (log or print)(f"calibration skipped: {summary['skipped']}")
    else:
        calibration.save(output_dir)
        summary = {"a": calibration.a, "b": calibration.b, "pairs": calibration.pairs, "fitted_on": calibration.fitted_on}
    facts_path = output_dir / "training.json"
    if facts_path.is_file():
        facts = json.loads(facts_path.read_text(encoding="utf-8"))
        facts["calibration"] = summary
        facts_path.write_text(json.dumps(facts, indent=2, default=str), encoding="utf-8")
    return summary


def _normalised(recipe_dict: dict) -> str:
    """The recipe as a comparable string, its missing keys at their defaults (a training.json written before a
    knob existed names the same recipe as one with that knob at its default)."""
    try:
        recipe_dict = Recipe.from_dict(recipe_dict).to_dict()
    except (TypeError, ValueError):  # a key this version does not know: compared as written, so never equal
        pass
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
    show_progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[Any, dict, bool]:
    """``(model, training facts, loaded)``: the model an earlier notebook saved in ``output_dir`` when its
    ``training.json`` records this very recipe, base model and data (the
    :func:`~rerank_utils.data.records.data_fingerprint` of the training queries it read and the validation queries;
    never a count of queries) (``loaded=True``), else a fresh :func:`train_recipe` run saved
    there. The facts are ``training.json``'s: curves, best validation NDCG@10, seconds, the recipe.

    Introduced in notebook ``14_bridge_reranker`` (which reuses the bridge notebook 03 trained)."""
    output_dir = Path(output_dir)
    facts_path = output_dir / "training.json"
    if facts_path.is_file():
        facts = json.loads(facts_path.read_text(encoding="utf-8"))
        same_base = str(facts.get("base_model")) == str(base_model)
        same_data = facts.get("data_fingerprint") == data_fingerprint(trained_on(recipe, train), val)
        if same_base and same_data and "recipe" in facts and _normalised(facts["recipe"]) == _normalised(recipe.to_dict()):
            model = load_cross_encoder(str(output_dir), device=device)
            if load_calibration(output_dir) is None and "calibration" not in facts:  # trained before calibration was saved with the model
                facts["calibration"] = _calibrate(model, val, first_stages.runs(val.queries, top_k=top_k)["bi-encoder"], top_k, output_dir, log)
            return model, facts, True
    run = train_recipe(recipe, train, val, first_stages, output_dir, base_model, top_k=top_k, device=device, show_progress=show_progress, log=log)
    return run.model, json.loads(facts_path.read_text(encoding="utf-8")), False
