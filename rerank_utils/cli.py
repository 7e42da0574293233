"""The ``rerank-utils`` command (also ``python -m rerank_utils``).

    rerank-utils run-notebooks --profile smoke            # every notebook, in order
    rerank-utils run-notebooks --profile cpu --only 01     # one notebook
    rerank-utils run-notebooks --from 00 --to 01           # a range
    rerank-utils profiles                                  # what each profile runs
    rerank-utils serve artifacts/cpu/models/reranker       # the rerank service on 127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import json
import sys

from .config import DEFAULT_PROFILE, PROFILES


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank-utils", description="Fine-tune cross-encoder rerankers for RAG.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run-notebooks",
        help="run the notebooks headlessly with papermill on a profile",
        description="Run notebooks/NN_*.ipynb in number order with papermill (kernel python3, cwd notebooks/). "
        "Executed copies go to artifacts/<profile>/executed/, the run's report to artifacts/<profile>/REPORT.md.",
    )
    run.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES), help="parameter set (default: %(default)s)")
    run.add_argument("--only", nargs="+", metavar="NB", help="run only these notebooks (numbers like 01 or names)")
    run.add_argument("--from", dest="start", metavar="NB", help="first notebook of a range (inclusive)")
    run.add_argument("--to", dest="end", metavar="NB", help="last notebook of a range (inclusive)")
    run.add_argument("--cell-timeout", type=int, metavar="SECONDS", help="per-cell limit (default: the profile's)")
    run.add_argument("--log-output", action="store_true", help="stream the notebooks' output to this terminal")
    run.add_argument("--list", action="store_true", help="list the selected notebooks and their parameters, run nothing")
    run.add_argument("--notebooks-dir", metavar="DIR", help="folder of NN_*.ipynb notebooks (default: the repository's notebooks/)")

    sub.add_parser("profiles", help="show every profile's parameters")

    srv = sub.add_parser(
        "serve",
        help="serve a saved reranker over HTTP (TEI /rerank, Cohere /v1|/v2/rerank)",
        description="Load a model folder once and serve it with uvicorn: POST /rerank (text-embeddings-inference shape, "
        "and the guide's {query, passages, top_n}), POST /v1/rerank and /v2/rerank (Cohere shape), GET /health, "
        "GET /metrics (Prometheus), OpenAPI at /docs. Ctrl-C or SIGTERM stops it cleanly.",
    )
    srv.add_argument("model_dir", help="a saved cross-encoder folder (e.g. artifacts/cpu/models/reranker), or an ONNX export with --backend onnx")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    srv.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    srv.add_argument("--backend", default="torch", choices=["torch", "onnx", "openvino"],
                     help="inference backend: torch, or an ONNX export on onnxruntime or OpenVINO (default: %(default)s)")
    srv.add_argument("--onnx-file", default="model.onnx", help="the ONNX file in model_dir, e.g. model_qint8.onnx (default: %(default)s)")
    srv.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: automatic)")
    srv.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on the rerank routes (or env RERANK_API_KEY)")
    srv.add_argument("--max-batch", type=int, default=64, help="pairs per forward pass the micro-batcher gathers (default: %(default)s)")
    srv.add_argument("--max-wait-ms", type=float, default=5.0, help="how long it waits for more requests (default: %(default)s)")
    srv.add_argument("--cache-size", type=int, default=100_000, help="scores kept in the LRU cache; 0 disables it (default: %(default)s)")
    srv.add_argument("--redis-url", default=None, help="cache scores in Redis instead, shared by workers and replicas, e.g. redis://localhost:6379/0 (default: env REDIS_URL)")
    srv.add_argument("--max-documents", type=int, default=1000, help="documents allowed in one request (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "profiles":
        for prof in PROFILES.values():
            print(f"{prof.name}: {prof.description}")
            print(f"  common: {json.dumps(prof.common)}")
            for nb, params in prof.notebooks.items():
                print(f"  {nb}: {json.dumps(params)}")
        return 0

    if args.command == "serve":
        import os

        from .service import serve

        try:
            serve(args.model_dir, host=args.host, port=args.port, backend=args.backend, api_key=args.api_key or os.environ.get("RERANK_API_KEY"),
                  device=args.device, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, cache_size=args.cache_size,
                  max_documents=args.max_documents, redis_url=args.redis_url, onnx_file=args.onnx_file)
        except (FileNotFoundError, ValueError, ConnectionError, ImportError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    from .notebooks import NotebookParameterError, NotebookRunError, discover_notebooks, run_notebooks, select_notebooks

    if args.list:
        prof = PROFILES[args.profile]
        for p in select_notebooks(discover_notebooks(args.notebooks_dir), only=args.only, start=args.start, end=args.end):
            print(f"{p.stem}: {json.dumps(prof.parameters_for(p.stem))}")
        return 0
    try:
        run_notebooks(
            profile=args.profile,
            only=args.only,
            start=args.start,
            end=args.end,
            cell_timeout=args.cell_timeout,
            folder=args.notebooks_dir,
            progress=lambda msg: print(msg, flush=True),
            progress_bar=sys.stderr.isatty(),
            log_output=args.log_output,
        )
    except (NotebookRunError, NotebookParameterError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
