"""The steps of ``rerank-utils prepare | mine | finetune | finetune-retriever | evaluate | export``, each over a
loaded :class:`~rerank_utils.cli.config_files.PipelineConfig`.

The steps (:func:`run_prepare`, :func:`run_mine`, :func:`run_finetune`, :func:`run_finetune_retriever`,
:func:`run_evaluate`, :func:`run_export`) call the same package functions as notebooks 01, 02/03, 03, 04 and 05,
build recipes through the same function as the notebooks (:mod:`rerank_utils.training.recipe_values`) and write
under ``artifacts/<name>/``. A split, a model or a retriever made from other values is never reused or replaced
silently: the step says so and names the command that fixes it (:class:`~rerank_utils.cli.errors.PipelineError`).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import torch

from rerank_utils.cli.config_files import PipelineConfig
from rerank_utils.cli.errors import ConfigError, PipelineError
from rerank_utils.data.records import data_fingerprint
from rerank_utils.data.saved_splits import prepare_splits, saved_split_params, split_params, splits_dir
from rerank_utils.data.splits import check_splits
from rerank_utils.data.triples import write_triples
from rerank_utils.evaluation.reports import comparison_frame, evaluate_rerankers, guide_claim, strongest_verdict
from rerank_utils.models.bridge import is_bridge
from rerank_utils.models.calibration import copy_calibration
from rerank_utils.models.export import calibration_pairs, export_onnx, quantize_onnx, quantize_openvino
from rerank_utils.models.fast import fast_reranker
from rerank_utils.models.loading import load_bi_encoder, load_cross_encoder, load_reranker
from rerank_utils.models.published import publish_reranker
from rerank_utils.paths import artifacts_dir
from rerank_utils.retrieval.dense import DenseRetriever
from rerank_utils.training.mining import mine_negatives, negatives_to_triples
from rerank_utils.training.recipe_schema import ARCHITECTURES
from rerank_utils.training.recipe_values import recipe_from_values, retriever_recipe_from_values
from rerank_utils.training.recipes import FirstStages, load_or_train_recipe, train_recipe
from rerank_utils.training.retriever import FACTS_FILE, load_or_train_retriever

EVALUATE_SPLITS = ("test", "val")
PIPELINE_FILE = "pipeline.json"  # beside a model `finetune` trained: the split and config it was trained with


# ------------------------------------------------------------------------------------------------- steps
def recipe_for(cfg: PipelineConfig, architecture: str | None = None):
    """The :class:`~rerank_utils.training.recipes.Recipe` of ``architecture`` (default: ``finetune.architecture``) from the
    config's ``finetune.<architecture>`` values, by the function notebook 03 calls too
    (:func:`rerank_utils.training.recipe_values.recipe_from_values`), so a model 03 trained with the same values is reused."""
    arch = architecture or cfg["finetune.architecture"]
    if arch not in ARCHITECTURES:
        raise ConfigError(f"architecture={arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    return recipe_from_values(arch, cfg.data["finetune"][arch], cfg["seed"])


def base_model_for(cfg: PipelineConfig, architecture: str) -> str:
    """What training starts from: ``reranker_model`` for the standard cross-encoder, ``embedding_model`` for
    the bridge (as in notebook 03)."""
    return cfg["reranker_model"] if architecture == "standard" else cfg["embedding_model"]


def split_params_of(cfg: PipelineConfig) -> dict[str, Any]:
    return split_params(cfg["data_source"], cfg["seed"], cfg["prepare.split_fractions"], cfg["prepare.group_key"], cfg["max_queries"],
                        cfg["prepare.resplit"])


def _check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PipelineError(f"device: {device!r}, but torch sees no CUDA GPU here; set `device: cpu` (or --set device=cpu)")


def _splits(cfg: PipelineConfig, rebuild: bool = False, log: Callable[[str], None] = print):
    """``(splits, how)``: the config's split from artifacts/<name>/data/splits when it was made with these
    values, else built and saved there. Splits made from other values are never replaced silently."""
    params = split_params_of(cfg)
    saved = saved_split_params(cfg.name)
    if saved is not None and saved != params and not rebuild:
        differ = ", ".join(f"{k}: {saved.get(k)!r} there, {params[k]!r} here" for k in params if saved.get(k) != params[k])
        raise PipelineError(
            f"{splits_dir(cfg.name)} holds a split made from other values ({differ}). Run `rerank-utils prepare "
            f"--config ... --rebuild` to replace it (models trained on the old split must then be trained again), or "
            f"set `name:` to another artifacts folder."
        )
    how = "reused" if saved == params and not rebuild else "built"
    splits = prepare_splits(cfg.name, cfg["data_source"], seed=cfg["seed"], fractions=cfg["prepare.split_fractions"],
                            group_key=cfg["prepare.group_key"], max_queries=cfg["max_queries"], rebuild=rebuild,
                            resplit=cfg["prepare.resplit"], log=log)
    return splits, how


def _first_stages(cfg: PipelineConfig, corpus: dict[str, str]):
    return FirstStages(corpus, load_bi_encoder(cfg["embedding_model"], device=cfg.device))


def _sizes(splits) -> str:
    return ", ".join(f"{name} {len(s)}" for name, s in splits.items())


def run_prepare(cfg: PipelineConfig, rebuild: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``prepare``: build and save the leak-free split (notebook 01), or reuse the one saved with these values."""
    splits, how = _splits(cfg, rebuild=rebuild, log=log)
    leakage = check_splits(splits)
    leak_free = all(r.ok for r in leakage.values())
    folder = splits_dir(cfg.name)
    corpus = next(iter(splits.values())).corpus
    log(f"split of {cfg['data_source']!r} ({how}): {_sizes(splits)} queries; {len(corpus)} documents")
    log(f"leak-free (no query or positive shared between splits): {'yes' if leak_free else 'NO: ' + str(leakage)}")
    log(f"saved in {folder} (BEIR qrels/<split>.tsv, triples/<split>.jsonl, split_meta.json)")
    if not leak_free:
        raise PipelineError(f"the split shares queries or positives between splits: {leakage}")
    return {"splits": {k: len(v) for k, v in splits.items()}, "documents": len(corpus), "folder": str(folder), "how": how,
            "leak_free": leak_free}


def run_mine(cfg: PipelineConfig, architecture: str | None = None, output: str | Path | None = None,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """``mine``: the negatives of the training split as the recipe of ``architecture`` mines them (notebooks
    02 and 03), written as the guide's triples; ``finetune`` mines the same ones again (seeded)."""
    _check_device(cfg.device)
    arch = architecture or cfg["finetune.architecture"]
    recipe = recipe_for(cfg, arch)
    splits, how = _splits(cfg)
    train = splits["train"]
    stages = _first_stages(cfg, train.corpus)
    log(f"mining {recipe.mining.num_negatives} {recipe.mining.strategy} negatives for each of {len(train)} training queries ...")
    mined = mine_negatives(train, recipe.mining, retriever=stages.retriever_for(recipe.mining))
    out = Path(output) if output else artifacts_dir(cfg.name, "mined") / f"{arch}.jsonl"
    write_triples(negatives_to_triples(train, mined), out)
    report = {"architecture": arch, "mining": recipe.to_dict()["mining"], "split": split_params_of(cfg), **mined.report.row(),
              "short_queries": list(mined.report.short_queries)}
    report_path = out.with_name(out.stem + "_report.json")
    report_path.write_text(json.dumps(report, indent=1, default=_json_default), encoding="utf-8")
    log(f"split ({how}): {_sizes(splits)} queries")
    log(mined.report.summary())
    log(f"wrote {out} (the guide's {{query, passage, score}} triples) and {report_path}")
    return {"triples": str(out), "report": str(report_path), "negatives": mined.report.total}


def run_finetune(cfg: PipelineConfig, architecture: str | None = None, retrain: bool = False, publish: bool = True,
                 output: str | Path | None = None, progress: bool = False, log: Callable[[str], None] = print,
                 quiet: bool = False) -> dict[str, Any]:
    """``finetune``: train the recipe of ``architecture`` as notebook 03 does (validation after each epoch,
    early stopping, the best epoch kept) into artifacts/<name>/models/<architecture>, reusing the model saved
    there when it was trained with this very recipe, base model and split; then publish it as
    artifacts/<name>/models/reranker, the model ``evaluate``, ``export`` and ``serve`` use. Training writes a line
    per epoch and per minute (step, time left) through ``log`` unless ``quiet``; ``progress``: tqdm's bars too."""
    _check_device(cfg.device)
    arch = architecture or cfg["finetune.architecture"]
    recipe = recipe_for(cfg, arch)
    base = base_model_for(cfg, arch)
    splits, how = _splits(cfg)
    train, val = splits["train"], splits["val"]
    stages = _first_stages(cfg, train.corpus)
    model_dir = Path(output) if output else artifacts_dir(cfg.name, "models", arch)
    params = split_params_of(cfg)
    top_k = cfg["finetune.top_k"]
    t = recipe.training
    log(f"split ({how}): {_sizes(splits)} queries")
    log(f"{arch} reranker from {base!r}: loss {t.loss}, {recipe.mining.num_negatives} {recipe.mining.strategy} negatives per query, "
        f"{t.epochs} epoch(s), lr {t.learning_rate:g}, batch {t.batch_size}, max_length {t.max_length}")
    training = dict(base_model=base, top_k=top_k, device=cfg.device, show_progress=progress and not quiet, log=None if quiet else log)
    if not retrain:  # reused only when recipe, base model and data fingerprint all match (else trained)
        _, facts, reused = load_or_train_recipe(recipe, train, val, stages, model_dir, **training)
    else:
        train_recipe(recipe, train, val, stages, model_dir, **training)
        facts, reused = json.loads((model_dir / "training.json").read_text(encoding="utf-8")), False
    (model_dir / PIPELINE_FILE).write_text(json.dumps(
        {"config": cfg.source, "name": cfg.name, "architecture": arch, "base_model": base, "split": params,
         "recipe": recipe.to_dict()}, indent=1), encoding="utf-8")
    best = facts.get("best_validation_ndcg@10")
    log(("reused the model saved with this recipe, base model and data in " if reused else "trained in ") + f"{model_dir}"
        + (f" ({facts.get('train_seconds', 0):.0f} s)" if not reused else ""))
    log(f"best validation NDCG@10 (bi-encoder top-{top_k} reranked): {best if best is None else round(best, 4)}")
    out = {"architecture": arch, "model_dir": str(model_dir), "reused": reused, "best_validation_ndcg@10": best,
           "train_seconds": facts.get("train_seconds")}
    if publish:
        published = publish_reranker(cfg.name, model_dir, arch, reason=f"rerank-utils finetune ({cfg.source})")
        log(f"published as {published} (what evaluate, export and serve use)")
        out["published"] = str(published)
    return out


def run_finetune_retriever(cfg: PipelineConfig, recipe=None, retrain: bool = False, output: str | Path | None = None,
                           progress: bool = False, log: Callable[[str], None] = print, quiet: bool = False) -> dict[str, Any]:
    """``finetune-retriever``: fine-tune the config's ``embedding_model`` on the training split (the guide's step
    before the reranker; :mod:`rerank_utils.training.retriever`) into artifacts/<name>/models/retriever, reusing the
    model saved there when its recipe, base model and data fingerprint match. ``evaluate --retriever`` then adds
    it as a first stage, alone and reranked."""
    _check_device(cfg.device)
    recipe = recipe or retriever_recipe_from_values(cfg["seed"])
    splits, how = _splits(cfg)
    train, val = splits["train"], splits["val"]
    out = Path(output) if output else artifacts_dir(cfg.name, "models", "retriever")
    log(f"split ({how}): {_sizes(splits)} queries")
    log(f"retriever from {cfg['embedding_model']!r}: MultipleNegativesRankingLoss, {recipe.mining.num_negatives} "
        f"{recipe.mining.strategy} negative(s) per query from the top {recipe.mining.range_max}, {recipe.epochs} epoch(s), "
        f"lr {recipe.learning_rate:g}, batch {recipe.batch_size}, max_length {recipe.max_length}")
    run = load_or_train_retriever(train, val, out, recipe, base_model=cfg["embedding_model"], device=cfg.device,
                                  retrain=retrain, show_progress=progress and not quiet, log=None if quiet else log)
    f = run.facts
    log(("reused the retriever saved with this recipe and data in " if run.reused else "trained in ") + str(out)
        + ("" if run.reused else f" ({f['train_seconds']:.0f} s)"))
    log(f"validation NDCG@10 (retrieval from the whole corpus): base {f['base_validation_ndcg@10']:.4f}, "
        + ", ".join(f"epoch {r['epoch']:g} {r['val ndcg@10']:.4f}" for r in f["validation_by_epoch"])
        + f"; kept epoch {f['best_epoch']:g}")
    return {"model_dir": str(out), "reused": run.reused, "best_validation_ndcg@10": run.best_metric,
            "base_validation_ndcg@10": f["base_validation_ndcg@10"], "best_epoch": f["best_epoch"], "train_seconds": f["train_seconds"]}


def _model_folder(path: str | Path | None, cfg: PipelineConfig) -> Path:
    folder = Path(path).expanduser().resolve() if path else artifacts_dir(cfg.name, "models", "reranker", create=False)
    if not ((folder / "modules.json").is_file() or (folder / "config.json").is_file()):
        hint = "" if path else f": run `rerank-utils finetune --config {cfg.source}` first (or pass --model DIR)"
        raise PipelineError(f"{folder} holds no saved model{hint}")
    return folder


def run_evaluate(cfg: PipelineConfig, models: Iterable[str | Path] | None = None, split: str = "test",
                 output: str | Path | None = None, retriever: str | Path | None = None,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """``evaluate``: BM25 and the bi-encoder alone, and their top-``evaluate.top_k`` reranked by each model
    (default: the published reranker), on the ``split`` queries, with paired bootstrap intervals and p-values
    (notebooks 03/04); prints the tables and writes them as JSON. With ``evaluate.fast_inference`` the models rerank
    as notebook 04's do (:func:`~rerank_utils.models.fast.fast_reranker`: OpenVINO bf16 where this CPU computes bf16
    natively); ``runs_on`` in the JSON says what scored each one."""
    _check_device(cfg.device)
    if split not in EVALUATE_SPLITS:
        raise ConfigError(f"split={split!r}: choose one of {', '.join(EVALUATE_SPLITS)}")
    folders = [_model_folder(m, cfg) for m in (models or [None])]
    params = split_params_of(cfg)
    for folder in folders:
        side = folder / PIPELINE_FILE
        if side.is_file() and json.loads(side.read_text(encoding="utf-8")).get("split") != params:
            raise PipelineError(f"{folder} was trained on another split than this config's ({side}): its {split} queries may be "
                                f"among its training queries. Train it again with `rerank-utils finetune`.")
    splits, how = _splits(cfg)
    ds = splits[split]
    top_k = cfg["evaluate.top_k"]
    stages = _first_stages(cfg, ds.corpus)
    log(f"first stages (BM25, bi-encoder) on {len(ds)} {split} queries ...")
    runs = stages.runs(ds.queries, top_k=top_k)
    if retriever is not None:  # the fine-tuned embedding model: a third first stage, alone and reranked (issue 12)
        rfolder = Path(retriever)
        facts_path = rfolder / FACTS_FILE
        rfacts = json.loads(facts_path.read_text(encoding="utf-8")) if facts_path.is_file() else {}
        if rfacts.get("kind") != "retriever":
            raise PipelineError(f"{rfolder} holds no fine-tuned retriever (no {FACTS_FILE} written by finetune-retriever): "
                                f"run `rerank-utils finetune-retriever` first, or pass its folder")
        if rfacts.get("data_fingerprint") != data_fingerprint(splits["train"], splits["val"]):
            raise PipelineError(f"{rfolder} was trained on other data than this config's split: its {split} queries may be "
                                f"among its training queries. Train it again with `rerank-utils finetune-retriever --retrain`.")
        runs["fine-tuned bi-encoder"] = DenseRetriever(ds.corpus, load_bi_encoder(str(rfolder), device=cfg.device)).search(ds.queries, top_k=top_k)
    rerankers: dict[str, Any] = {}
    paths: dict[str, str] = {}
    runs_on: dict[str, str] = {}
    for folder in folders:
        label = folder.name if folder.name not in rerankers else f"{folder.name} ({len(rerankers) + 1})"
        model = load_cross_encoder(str(folder), device=cfg.device)
        rerankers[label] = fast_reranker(model) if cfg["evaluate.fast_inference"] else model
        runs_on[label] = getattr(rerankers[label], "runs_on", f"PyTorch fp32 on {cfg.device}")
        paths[label] = str(folder)
    pairs = len(ds) * top_k * len(runs) * len(rerankers)
    log(f"reranking: {len(rerankers)} model(s) x {len(runs)} first stage(s) x {len(ds)} queries x top-{top_k} = up to {pairs} pairs, "
        f"on {', '.join(sorted(set(runs_on.values())))} ...")
    ev = evaluate_rerankers(rerankers, ds, runs, top_k=top_k, seed=cfg["seed"], log=log)
    table, comparisons = ev.table(), comparison_frame(ev.comparisons)
    claim = guide_claim({k: c for k, c in ev.comparisons.items() if k.count(" + ") == 1})
    verdicts = {}  # issue 12: each reranker judged against the strongest row, the fine-tuned retriever included
    if retriever is not None:
        verdicts = {label: strongest_verdict(ev.results, ev.comparisons, f"fine-tuned bi-encoder + {label}") for label in rerankers}
    out_path = Path(output) if output else artifacts_dir(cfg.name, "pipeline") / f"evaluate_{split}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "config": cfg.source, "name": cfg.name, "split": split, "queries": len(ds), "top_k": top_k, "models": paths, "runs_on": runs_on,
        "retriever": None if retriever is None else str(retriever),
        "table": table.to_dict(orient="index"), "comparisons": {k: vars(c) for k, c in ev.comparisons.items()}, "guide_claim": claim,
        "verdicts": verdicts,
    }
    out_path.write_text(json.dumps(result, indent=1, default=_json_default), encoding="utf-8")

    with pd.option_context("display.width", 200, "display.max_columns", 20):
        log(f"{len(ds)} {split} queries ({how} split), first-stage top-{top_k} reranked by: "
            + ", ".join(f"{k} ({v})" for k, v in paths.items()))
        log(table.round(3).to_string())
        log("\nNDCG@10, paired bootstrap 95 % intervals and randomisation p-values:")
        log(comparisons.infer_objects().round(3).to_string())
    for name, verdict in claim.items():
        log(f"{name}: {verdict}")
    for label, verdict in verdicts.items():
        log(f"\nagainst the strongest first stage ({label}): {verdict}")
    log(f"wrote {out_path}")
    return result


def run_export(cfg: PipelineConfig, model: str | Path | None = None, output: str | Path | None = None,
               quantize: bool | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``export``: the reranker (a bridge or a standard cross-encoder) to ONNX (``model.onnx`` + tokenizer + config;
    with ``quantize`` also onnxruntime's int8 ``model_qint8.onnx`` and, where OpenVINO and NNCF are installed, OpenVINO's
    int8 ``openvino_int8.xml`` calibrated on the training split), as notebook 05 does, then checked: the ONNX scores of a few
    pairs against PyTorch's, read back through the loader the service uses."""
    folder = _model_folder(model, cfg)
    quantize = cfg["export.quantize"] if quantize is None else quantize
    out = Path(output) if output else artifacts_dir(cfg.name, "models", "reranker_onnx")
    reranker = load_cross_encoder(str(folder), device="cpu")
    try:
        path = export_onnx(reranker, out)
        copy_calibration(folder, out)  # the export is served alone: its probabilities stay calibrated
        files = [path]
        if quantize:
            files.append(quantize_onnx(out))
    except ImportError as exc:
        raise PipelineError(f"ONNX export needs onnx and onnxruntime: pip install -e '.[onnx]' ({exc})") from None
    openvino_int8 = None
    if quantize and importlib.util.find_spec("nncf") and importlib.util.find_spec("openvino"):
        splits, _ = _splits(cfg)  # calibrated on the training split's candidates, never the test split
        log(f"calibrating OpenVINO's int8 (NNCF) on {cfg.name}'s training split ...")
        openvino_int8 = quantize_openvino(out, calibration_pairs(splits["train"], load_bi_encoder(cfg["embedding_model"], device=cfg.device)))
    pairs = [("what does a building permit cost", "A building permit costs a fee set by the municipality."),
             ("who pays the tax", "The buyer of the service pays it."),
             ("how long does it take", "About ten weeks, sometimes longer for a larger house or a complete renovation.")]
    reference = np.asarray(reranker.predict(pairs))
    backends = {f: "onnx" for f in files} | ({openvino_int8: "openvino"} if openvino_int8 else {})
    checks = {f.name: float(np.abs(load_reranker(out, backend=b, onnx_file=f.name).predict(pairs) - reference).max())
              for f, b in backends.items()}
    files = list(backends)
    kind = "scale x cosine" if is_bridge(reranker) else "after its activation"
    span = f"PyTorch's scores ({kind}) run from {reference.min():.2f} to {reference.max():.2f}"
    for f in files:
        log(f"wrote {f} ({f.stat().st_size / 1e6:.1f} MB): largest score difference from PyTorch on {len(pairs)} pairs {checks[f.name]:.2g}")
    log(span + (" (int8 moves scores a little; benchmarks/README.md measures what it does to NDCG)" if quantize else ""))
    log(f"serve it: rerank-utils serve {out} --backend onnx" + (" --onnx-file model_qint8.onnx" if quantize else "")
        + (f"  (or --backend openvino --onnx-file {openvino_int8.name})" if openvino_int8 else ""))
    return {"folder": str(out), "files": [str(f) for f in files], "max_abs_diff": checks}


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)
