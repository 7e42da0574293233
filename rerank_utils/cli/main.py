"""The ``rerank-utils`` command (also ``python -m rerank_utils``): the pipeline steps over one YAML config, in the
order :data:`PIPELINE` (the epilog of ``--help``) shows them; ``run-notebooks --profile smoke`` runs every notebook,
in order; ``profiles`` shows what each profile runs.

The commands only parse options and print; the work is in :mod:`rerank_utils.cli.config_files` (configs),
:mod:`rerank_utils.cli.steps` (the steps), :mod:`rerank_utils.tutorial.runner` and :mod:`rerank_utils.serving.app`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial
from pathlib import Path

from rerank_utils.cli.config_files import config_yaml, load_config
from rerank_utils.cli.errors import ConfigError, PipelineError
from rerank_utils.models.resolve import ModelNotAvailableOffline
from rerank_utils.paths import CACHE_VARIABLES, artifacts_dir, discover_notebooks, profile_caches
from rerank_utils.tutorial.profiles import DEFAULT_PROFILE, PROFILES

# The steps (rerank_utils.cli.steps: torch and sentence-transformers), the server (FastAPI) and the notebook runner
# (papermill) are imported inside the command that runs them, so `rerank-utils --help` and `check-config` answer at once.

PIPELINE = """\
the pipeline, driven by one YAML config (configs/<profile>.yaml, or your own):
  rerank-utils init-config --profile cpu --minimal --output team.yaml   # then edit data_source, name
  rerank-utils prepare  --config team.yaml     # leak-free train/val/test split      (notebook 01)
  rerank-utils mine     --config team.yaml     # negatives of the training queries   (notebooks 02, 03)
  rerank-utils finetune-retriever --config team.yaml  # the embedding model first      (notebook 03)
  rerank-utils finetune --config team.yaml     # train, keep the best epoch, publish (notebook 03)
  rerank-utils evaluate --config team.yaml --retriever artifacts/team/models/retriever
                                               # test table, paired 95 % intervals   (notebook 04)
  rerank-utils export   --config team.yaml     # ONNX (+ int8) of the reranker     (notebook 05)
  rerank-utils serve    --config team.yaml     # HTTP rerank service                  (notebook 05)
Each writes under artifacts/<name>/ and runs the package functions the notebooks run.
Exit status: 0 done, 1 the step failed (the message says why), 2 a bad command line or config.
`rerank-utils COMMAND --help` describes each command."""


_Formatter = partial(argparse.RawDescriptionHelpFormatter, max_help_position=32, width=110)


def _sub(sub, name: str, help: str, description: str, examples: str, **kw) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=description, epilog="examples:\n" + examples,
                          formatter_class=_Formatter, **kw)


def _config_options(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", metavar="FILE",
                     help="YAML pipeline config: configs/<profile>.yaml or your own (`profile: cpu` + the keys you change)")
    src.add_argument("--profile", choices=sorted(PROFILES), help="a profile's values without a file (= a file holding only `profile: NAME`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set finetune.bridge.epochs=1 (repeatable)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank-utils", description="Fine-tune cross-encoder rerankers for RAG.",
                                     epilog=PIPELINE, formatter_class=_Formatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    # ------------------------------------------------------------------------------------- config
    init = _sub(
        sub, "init-config", "write a profile's config as YAML, for a team to edit",
        "Write a pipeline config: every key with the profile's value (PROFILES in rerank_utils/tutorial/profiles.py,\n"
        "which the notebooks run) and a comment saying what it means. With --minimal only the keys a\n"
        "team changes first (name, data_source, models); every other key then comes from the profile.",
        "  rerank-utils init-config --profile cpu > my.yaml\n"
        "  rerank-utils init-config --profile smoke --minimal --output team.yaml",
        aliases=["config"],
    )
    init.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES), help="the profile whose values to write (default: %(default)s)")
    init.add_argument("--output", metavar="FILE", help="write here instead of to standard output")
    init.add_argument("--minimal", action="store_true", help="write only profile, name, data_source and the models")
    init.add_argument("--force", action="store_true", help="overwrite --output if it exists")

    check = _sub(
        sub, "check-config", "validate a config and print every value it resolves to",
        "Read a config, fill it from its profile, apply --set, validate, and print the full result as YAML.\n"
        "A problem names the file, the key, the value and the allowed values (exit status 2).",
        "  rerank-utils check-config --config configs/cpu.yaml\n"
        "  rerank-utils check-config --profile smoke --set finetune.architecture=standard",
    )
    _config_options(check)

    # ----------------------------------------------------------------------------------- pipeline
    prep = _sub(
        sub, "prepare", "build and save the leak-free train/val/test split (notebook 01)",
        "Build the dataset named by data_source (the packaged FAQ, QASPER, a BEIR or MS MARCO folder, a triples\n"
        "file), sample max_queries, split it by query with prepare.split_fractions so that no query or positive\n"
        "is shared between splits, and save it in artifacts/<name>/data/splits/ (BEIR qrels, triples, split_meta.json).\n"
        "A split saved with the same values is reused; one saved with other values is replaced only with --rebuild.",
        "  rerank-utils prepare --config configs/smoke.yaml\n"
        "  rerank-utils prepare --profile cpu --set data_source=data/my_triples.jsonl --set name=mine --rebuild",
    )
    _config_options(prep)
    prep.add_argument("--rebuild", action="store_true", help="build the split again even if one is saved (replacing it)")

    mine = _sub(
        sub, "mine", "mine negatives for the training queries (notebooks 02, 03)",
        "Mine negatives for the training split with the recipe of finetune.<architecture> (negatives,\n"
        "num_negatives, hard_fraction, hard_source, relative_margin; BM25 and the bi-encoder embedding_model over the\n"
        "corpus), as notebook 03's training does, and write them as the guide's {query, passage, score} triples with\n"
        "a report of what was mined and dropped. `finetune` mines the same negatives again (seeded), so this step is\n"
        "for inspecting them or training elsewhere.",
        "  rerank-utils mine --config configs/smoke.yaml\n"
        "  rerank-utils mine --config team.yaml --architecture standard --output negatives.jsonl",
    )
    _config_options(mine)
    mine.add_argument("--architecture", choices=["standard", "bridge"], help="whose recipe to mine with (default: finetune.architecture)")
    mine.add_argument("--output", metavar="FILE", help="triples file, .jsonl/.json/.csv (default: artifacts/<name>/mined/<architecture>.jsonl)")

    ft = _sub(
        sub, "finetune", "fine-tune the reranker with the config's recipe and publish it (notebook 03)",
        "Train the standard cross-encoder (from reranker_model) or the bridge reranker (from embedding_model)\n"
        "with the recipe in finetune.<architecture>: negatives mined from the training split, validation NDCG@10\n"
        "of the bi-encoder's top-k reranked after each epoch, early stopping, the best epoch kept. The model goes to\n"
        "artifacts/<name>/models/<architecture>/ (a model card, training.json and pipeline.json beside it); a model\n"
        "saved there with the same recipe, base model and split is reused unless --retrain. Then it is published as\n"
        "artifacts/<name>/models/reranker/, the model evaluate, export and serve use.",
        "  rerank-utils finetune --config configs/smoke.yaml\n"
        "  rerank-utils finetune --config team.yaml --architecture standard --set finetune.standard.epochs=1",
    )
    _config_options(ft)
    ft.add_argument("--architecture", choices=["standard", "bridge"], help="which reranker to train (default: finetune.architecture)")
    ft.add_argument("--retrain", action="store_true", help="train even if a model with this recipe, base model and data is saved")
    ft.add_argument("--quiet", action="store_true", help="no progress lines (step, epoch, time left) while training: for scripts")
    ft.add_argument("--no-publish", dest="publish", action="store_false", help="do not make it artifacts/<name>/models/reranker")
    ft.add_argument("--output", metavar="DIR", help="model folder (default: artifacts/<name>/models/<architecture>)")

    ftr = _sub(
        sub, "finetune-retriever", "fine-tune the embedding model (the first stage) before the reranker (notebook 03)",
        "Fine-tune embedding_model on the training split as the guide's order says (the retriever first, the reranker\n"
        "last): sentence-transformers' SentenceTransformerTrainer with MultipleNegativesRankingLoss over (query, positive,\n"
        "mined hard negative) triples, validation NDCG@10 of retrieving the validation queries after each epoch, the best\n"
        "epoch kept. The model goes to artifacts/<name>/models/retriever/ (a sentence-transformers folder with its model\n"
        "card and training.json); one saved there with the same recipe, base model and data is reused unless --retrain.\n"
        "`rerank-utils evaluate --retriever DIR` then compares it, alone and reranked, with the other first stages.",
        "  rerank-utils finetune-retriever --config configs/smoke.yaml\n"
        "  rerank-utils finetune-retriever --config team.yaml --epochs 3 --learning-rate 2e-5",
    )
    _config_options(ftr)
    ftr.add_argument("--epochs", type=int, default=2, help="training epochs; the best on validation is kept (default: %(default)s)")
    ftr.add_argument("--learning-rate", type=float, default=5e-5, help="AdamW learning rate (default: %(default)s)")
    ftr.add_argument("--batch-size", type=int, default=32, help="queries per step; the batch's other passages are negatives too (default: %(default)s)")
    ftr.add_argument("--negatives", type=int, default=1, help="hard negatives mined per query from the base model's top 10 (default: %(default)s)")
    ftr.add_argument("--max-length", type=int, default=256, help="tokens per text (default: %(default)s)")
    ftr.add_argument("--retrain", action="store_true", help="train even if a retriever with this recipe and data is saved")
    ftr.add_argument("--quiet", action="store_true", help="no progress lines (step, epoch, time left) while training: for scripts")
    ftr.add_argument("--output", metavar="DIR", help="model folder (default: artifacts/<name>/models/retriever)")

    ev = _sub(
        sub, "evaluate", "evaluate the fine-tuned reranker against the first stages, with intervals (notebook 04)",
        "On the test queries (or --split val): BM25 and the bi-encoder alone, and each one's top evaluate.top_k\n"
        "reranked by the model(s). Prints Hit@1/3/5, MRR@10, NDCG@10, Recall@20 per pipeline, then each change in\n"
        "NDCG@10 with its paired bootstrap 95 % interval, randomisation p-value, wins and losses, and the guide's\n"
        "\"+10-30 %\" checked; writes it all as JSON. Several --model options put several models in one table,\n"
        "with paired comparisons between them too.",
        "  rerank-utils evaluate --config configs/smoke.yaml\n"
        "  rerank-utils evaluate --config team.yaml --model artifacts/team/models/standard --model artifacts/team/models/bridge",
    )
    _config_options(ev)
    ev.add_argument("--model", action="append", metavar="DIR", help="a saved reranker folder; repeatable (default: artifacts/<name>/models/reranker)")
    ev.add_argument("--retriever", metavar="DIR", help="a fine-tuned retriever (finetune-retriever's folder): another first stage, alone and reranked")
    ev.add_argument("--split", default="test", choices=["test", "val"], help="the queries to evaluate on (default: %(default)s)")
    ev.add_argument("--output", metavar="FILE", help="JSON file (default: artifacts/<name>/pipeline/evaluate_<split>.json)")

    ex = _sub(
        sub, "export", "export the reranker (bridge or standard cross-encoder) to ONNX, optionally int8 (notebook 05)",
        "Export the reranker's forward pass (a bridge with its cross-segment mask, or a standard cross-encoder with its\n"
        "activation) to model.onnx with its tokenizer and config, and with quantisation also the dynamic int8\n"
        "model_qint8.onnx and, with OpenVINO and NNCF installed, OpenVINO's int8 openvino_int8.xml calibrated on\n"
        "the training split; then compare their scores with PyTorch's on a few pairs. Serve the folder alone with\n"
        "`rerank-utils serve DIR --backend onnx` (or --backend openvino).",
        "  rerank-utils export --config configs/smoke.yaml\n"
        "  rerank-utils export --config team.yaml --model artifacts/team/models/bridge --no-quantize --output onnx/",
    )
    _config_options(ex)
    ex.add_argument("--model", metavar="DIR", help="a saved reranker, bridge or standard (default: artifacts/<name>/models/reranker)")
    ex.add_argument("--output", metavar="DIR", help="folder for the ONNX files (default: artifacts/<name>/models/reranker_onnx)")
    ex.add_argument("--quantize", action=argparse.BooleanOptionalAction, default=None,
                    help="also write the int8 models (default: export.quantize)")

    # -------------------------------------------------------------------------- notebooks, service
    run = _sub(
        sub, "run-notebooks", "run the notebooks headlessly with papermill on a profile",
        "Run notebooks/NN_*.ipynb in number order with papermill (kernel python3, cwd notebooks/), each with the\n"
        "profile's parameters injected (a parameter a notebook does not declare is an error). Executed copies go to\n"
        "artifacts/<profile>/executed/, the run's report to artifacts/<profile>/REPORT.md.",
        "  rerank-utils run-notebooks --profile smoke\n"
        "  rerank-utils run-notebooks --profile cpu --only 03 14\n"
        "  rerank-utils run-notebooks --from 00 --to 01 --list",
    )
    run.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES), help="parameter set (default: %(default)s)")
    run.add_argument("--only", nargs="+", metavar="NB", help="run only these notebooks (numbers like 01 or names)")
    run.add_argument("--from", dest="start", metavar="NB", help="first notebook of a range (inclusive)")
    run.add_argument("--to", dest="end", metavar="NB", help="last notebook of a range (inclusive)")
    run.add_argument("--cell-timeout", type=int, metavar="SECONDS", help="per-cell limit (default: the profile's)")
    run.add_argument("--log-output", action="store_true", help="stream the notebooks' output to this terminal")
    run.add_argument("--quiet", action="store_true", help="no progress lines (which cell runs, for how long) and no bars: for scripts")
    run.add_argument("--list", action="store_true", help="list the selected notebooks and their parameters, run nothing")
    run.add_argument("--notebooks-dir", metavar="DIR", help="folder of NN_*.ipynb notebooks (default: the repository's notebooks/)")

    _sub(sub, "profiles", "show every profile's parameters",
         "Print each profile's description, the parameters every notebook gets, and each notebook's own.",
         "  rerank-utils profiles")

    srv = _sub(
        sub, "serve", "serve a saved reranker over HTTP (TEI /rerank, Cohere /v1|/v2/rerank)",
        "Load a model folder once and serve it with uvicorn: POST /rerank (text-embeddings-inference shape, and the\n"
        "guide's {query, passages, top_n}), POST /v1/rerank and /v2/rerank (Cohere shape), GET /health, GET /metrics\n"
        "(Prometheus), OpenAPI at /docs. Ctrl-C or SIGTERM stops it cleanly. With --config and no MODEL_DIR it serves\n"
        "the config's published reranker (artifacts/<name>/models/reranker, or reranker_onnx with --backend onnx).",
        "  rerank-utils serve artifacts/cpu/models/reranker --port 8080\n"
        "  rerank-utils serve --config configs/smoke.yaml --backend onnx --onnx-file model_qint8.onnx\n"
        "  curl -s localhost:8080/rerank -H 'content-type: application/json' -d '{\"query\": \"q\", \"texts\": [\"a\", \"b\"]}'",
    )
    srv.add_argument("model_dir", nargs="?", help="a saved cross-encoder folder (e.g. artifacts/cpu/models/reranker), or an ONNX export with --backend onnx")
    srv.add_argument("--config", metavar="FILE", help="a pipeline config: without MODEL_DIR, serve its reranker; its device is the default --device")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    srv.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    srv.add_argument("--backend", default="torch", choices=["torch", "onnx", "openvino"],
                     help="inference backend: torch, or an ONNX export on onnxruntime or OpenVINO (default: %(default)s)")
    srv.add_argument("--onnx-file", default="model.onnx", help="the ONNX file in model_dir, e.g. model_qint8.onnx (default: %(default)s)")
    srv.add_argument("--precision", choices=["f32", "bf16", "auto"], default="f32",  # models.precision.PRECISIONS (it loads torch)
                     help="f32; bf16 (PyTorch autocast or OpenVINO; fast only on a CPU with native bf16: AVX512-BF16 or AMX); "
                          "auto: bf16 where the CPU has it, f32 elsewhere (default: %(default)s)")
    srv.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: the config's, else automatic)")
    srv.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on the rerank routes (or env RERANK_API_KEY)")
    srv.add_argument("--max-batch", type=int, default=64, help="pairs per forward pass the micro-batcher gathers (default: %(default)s)")
    srv.add_argument("--max-wait-ms", type=float, default=5.0, help="how long it waits for more requests (default: %(default)s)")
    srv.add_argument("--cache-size", type=int, default=100_000, help="scores kept in the LRU cache; 0 disables it (default: %(default)s)")
    srv.add_argument("--redis-url", default=None, help="cache scores in Redis instead, shared by workers and replicas, e.g. redis://localhost:6379/0 (default: env REDIS_URL)")
    srv.add_argument("--max-documents", type=int, default=1000, help="documents allowed in one request (default: %(default)s)")
    srv.add_argument("--max-body-bytes", type=int, default=2_000_000, help="largest request body, chunked or not; larger gets 413 (default: %(default)s)")
    srv.add_argument("--deadline-s", type=float, default=30.0, help="a request not answered within this many seconds gets 504 (default: %(default)s)")
    srv.add_argument("--max-queue-pairs", type=int, default=None,
                     help="pairs allowed to wait for the model; past it 429 with Retry-After (default: what the model scores in --queue-seconds)")
    srv.add_argument("--queue-seconds", type=float, default=5.0,
                     help="size the queue bound from the pairs/s measured at start: this many seconds of work (default: %(default)s)")
    return parser


# ------------------------------------------------------------------------------------------ commands
def _say(message: str) -> None:
    """A progress or result line, written at once (a pipe or a log file sees it while the step runs)."""
    print(message, flush=True)


def _read(args):
    return load_config(args.config, None if args.config else args.profile, args.overrides)


def _load(args):
    cfg = _read(args)
    source = cfg.source if cfg.source.startswith("profile ") else f"{cfg.source} (profile {cfg.profile})"
    _say(f"config: {source}; artifacts: {artifacts_dir(cfg.name, create=False)}")
    # corpus embeddings and reranker scores computed once per profile, shared with run-notebooks; main() restores
    for name, folder in profile_caches(cfg.name).items():
        os.environ.setdefault(name, folder)
    return cfg


def _steps():
    """rerank_utils.cli.steps (torch, sentence-transformers), imported when a step runs."""
    from rerank_utils.cli import steps

    return steps


def _init_config(args) -> int:
    text = config_yaml(args.profile, minimal=args.minimal)
    if not args.output:
        sys.stdout.write(text)
        return 0
    path = Path(args.output)
    if path.exists() and not args.force:
        print(f"error: {path} exists; --force overwrites it", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}; check it with: rerank-utils check-config --config {path}")
    return 0


def _check_config(args) -> int:
    cfg = _read(args)
    print(f"# {cfg.source}: valid. Every value, the profile {cfg.profile!r} filling what the file leaves out:\n")
    print(cfg.yaml(), end="")
    return 0


def _finetune_retriever(args):
    from rerank_utils.training.recipe_values import retriever_recipe_from_values

    cfg = _load(args)
    recipe = retriever_recipe_from_values(cfg["seed"], negatives=args.negatives, epochs=args.epochs, learning_rate=args.learning_rate,
                                          batch_size=args.batch_size, max_length=args.max_length)
    return _steps().run_finetune_retriever(cfg, recipe, retrain=args.retrain, output=args.output, progress=sys.stderr.isatty(),
                                           log=_say, quiet=args.quiet)


def _profiles(args) -> int:
    for prof in PROFILES.values():
        print(f"{prof.name}: {prof.description}")
        print(f"  common: {json.dumps(prof.common)}")
        for nb, params in prof.notebooks.items():
            print(f"  {nb}: {json.dumps(params)}")
    return 0


def _serve(args) -> int:
    from rerank_utils.serving.app import serve

    model_dir, device = args.model_dir, args.device
    if args.config:
        cfg = load_config(args.config)
        model_dir = model_dir or str(artifacts_dir(cfg.name, "models", "reranker" if args.backend == "torch" else "reranker_onnx", create=False))
        device = device or cfg.device
    if not model_dir:
        print("error: serve needs MODEL_DIR or --config (whose published reranker it serves)", file=sys.stderr)
        return 2
    serve(model_dir, host=args.host, port=args.port, backend=args.backend, api_key=args.api_key or os.environ.get("RERANK_API_KEY"),
          device=device, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, cache_size=args.cache_size,
          max_documents=args.max_documents, redis_url=args.redis_url, onnx_file=args.onnx_file,
          precision=args.precision, max_body_bytes=args.max_body_bytes, deadline_seconds=args.deadline_s,
          max_queue_pairs=args.max_queue_pairs, queue_seconds=args.queue_seconds)  # its errors: main() says them, exit 1
    return 0


def _run_notebooks(args) -> int:
    # local: papermill and nbformat load only when notebooks run (`--help` and check-config stay fast)
    from rerank_utils.tutorial.runner import NotebookRunError, run_notebooks, select_notebooks

    if args.list:
        prof = PROFILES[args.profile]
        for p in select_notebooks(discover_notebooks(args.notebooks_dir), only=args.only, start=args.start, end=args.end):
            print(f"{p.stem}: {json.dumps(prof.parameters_for(p.stem))}")
        return 0
    try:  # a bad selection or parameter (ValueError, FileNotFoundError): main() says it, exit 1
        run_notebooks(profile=args.profile, only=args.only, start=args.start, end=args.end, cell_timeout=args.cell_timeout,
                      folder=args.notebooks_dir, progress=None if args.quiet else _say,
                      progress_bar=sys.stderr.isatty() and not args.quiet, log_output=args.log_output)
    except NotebookRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _step(run):
    """A pipeline step (:mod:`rerank_utils.cli.steps`) as a command: ``run(args)`` does the work, exit status 0."""
    def command(args) -> int:
        run(args)
        return 0
    return command


_COMMANDS = {
    "init-config": _init_config, "config": _init_config, "check-config": _check_config, "profiles": _profiles, "serve": _serve,
    "run-notebooks": _run_notebooks, "finetune-retriever": _step(_finetune_retriever),
    "prepare": _step(lambda a: _steps().run_prepare(_load(a), rebuild=a.rebuild, log=_say)),
    "mine": _step(lambda a: _steps().run_mine(_load(a), architecture=a.architecture, output=a.output, log=_say)),
    "finetune": _step(lambda a: _steps().run_finetune(_load(a), architecture=a.architecture, retrain=a.retrain, publish=a.publish,
                                                      output=a.output, progress=sys.stderr.isatty(), log=_say, quiet=a.quiet)),
    "evaluate": _step(lambda a: _steps().run_evaluate(_load(a), models=a.model, split=a.split, output=a.output, retriever=a.retriever,
                                                      log=_say)),
    "export": _step(lambda a: _steps().run_export(_load(a), model=a.model, output=a.output, quantize=a.quantize, log=_say)),
}


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    cache_env = {name: os.environ.get(name) for name in CACHE_VARIABLES}
    try:
        return _COMMANDS[args.command](args)
    except ConfigError as exc:  # a bad config or --set: exit 2, like a bad command line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (PipelineError, FileNotFoundError, FileExistsError, ValueError, ConnectionError, ImportError, ModelNotAvailableOffline) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:  # _load set them for this command only (main() is also called in-process, by tests and scripts)
        for name, value in cache_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
