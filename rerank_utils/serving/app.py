"""A rerank HTTP service (FastAPI) that real clients already speak.

* ``POST /rerank``: Hugging Face text-embeddings-inference's shape (``query``, ``texts``, ``raw_scores``,
  ``return_text``, ``truncate``) -> ``[{index, score, text?}]``, every text, best first. The guide's body
  ``{query, passages, top_n}`` is accepted on the same route.
* ``POST /v1/rerank`` and ``/v2/rerank``: Cohere's shape (``query``, ``documents``, ``top_n``,
  ``return_documents``) -> ``{id, results: [{index, relevance_score, document?}], meta}``, so LlamaIndex's
  ``CohereRerank(base_url=...)`` and LangChain's Cohere client work unchanged.
* ``GET /health``, ``GET /metrics`` (Prometheus text), OpenAPI at ``/docs``; an optional API key (Bearer) on
  the rerank routes only.

Bad input never gives a 500: an empty query or list, or a wrong field -> 422 with ``{error, error_type}``;
too many documents or too large a body -> 413. Scores of ``(model, query, document)`` are cached in an
in-process LRU, or in Redis when ``REDIS_URL`` is set (:class:`~rerank_utils.serving.cache.RedisScoreCache`, shared by every worker and
replica). Serve a model folder with :func:`load_service` + :func:`create_app` (``uvicorn`` runs it), or
``rerank-utils serve``; :class:`~rerank_utils.serving.background.BackgroundServer` runs one in a thread (notebooks, tests) and
:func:`~rerank_utils.serving.load_client.load_test` measures one under concurrent clients.

Introduced in notebook ``05_deployment``.
"""

# No `from __future__ import annotations` here: FastAPI reads the route signatures' annotations at runtime,
# and the request models are local to create_app.
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import uvicorn
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field, model_validator

from rerank_utils.models.loading import load_reranker
from rerank_utils.serving.batching import MicroBatcher, RawScorer
from rerank_utils.serving.cache import ScoreCache, make_cache
from rerank_utils.serving.metrics import metrics_text


@dataclass
class RerankService:
    """What the routes call: limits, the cache, counters, and ``score(query, texts)`` through ``scorer``
    (anything with ``predict(pairs, batch_size=...)`` returning raw scores, e.g. a ``CrossEncoder`` asked for
    logits or :class:`~rerank_utils.models.onnx_runtime.OnnxBridgeReranker`)."""
    scorer: Any
    model_name: str = "reranker"
    max_documents: int = 1000
    max_text_chars: int = 20_000  # longer texts are cut to this many characters unless truncate=False
    batch_size: int = 32
    cache: Any = field(default_factory=ScoreCache)  # ScoreCache or RedisScoreCache
    counters: dict[str, float] = field(default_factory=lambda: {"requests": 0, "errors": 0, "pairs_scored": 0, "seconds": 0.0})
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def raw_scores(self, query: str, texts: Sequence[str]) -> list[float]:
        keys = [(self.model_name, query, t) for t in texts]
        scores: list[float | None] = list(self.cache.get_many(keys))
        todo = [i for i, s in enumerate(scores) if s is None]
        if todo:
            new = self.scorer.predict([(query, texts[i]) for i in todo], batch_size=self.batch_size, show_progress_bar=False)
            for i, s in zip(todo, new):
                scores[i] = float(s)
            self.cache.put_many([(keys[i], scores[i]) for i in todo])
            self.count(pairs_scored=len(todo))
        return [float(s) for s in scores]

    def count(self, **increments: float) -> None:
        """Add to the counters (thread-safe: route handlers run in a thread pool)."""
        with self._lock:
            for name, value in increments.items():
                self.counters[name] += value

    def metrics_text(self) -> str:
        """The counters in the Prometheus text format (:mod:`rerank_utils.serving.metrics`)."""
        return metrics_text(self)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def create_app(service: RerankService, api_key: str | None = None, max_body_bytes: int = 2_000_000):
    """The FastAPI app over ``service``. ``api_key``: when set, the rerank routes need ``Authorization:
    Bearer <api_key>`` (``/health``, ``/metrics`` and ``/docs`` stay open)."""
    class ServiceError(Exception):
        def __init__(self, status: int, message: str, error_type: str):
            self.status, self.message, self.error_type = status, message, error_type

    class TEIRequest(BaseModel):
        query: str = Field(min_length=1, description="the search query")
        texts: list[str] | None = Field(default=None, description="texts to rerank (TEI)")
        passages: list[str] | None = Field(default=None, description="the guide's name for texts")
        raw_scores: bool = False
        return_text: bool = False
        truncate: bool = True
        top_n: int | None = Field(default=None, ge=1, description="keep the best top_n (the guide's body)")

        @model_validator(mode="after")
        def _one_list(self):
            if (self.texts is None) == (self.passages is None):
                raise ValueError("give the texts to rerank as `texts` (TEI) or `passages` (the guide), exactly one of them")
            if not (self.texts or self.passages):
                raise ValueError("the list of texts is empty: send at least one text")
            return self

    class CohereRequest(BaseModel):
        query: str = Field(min_length=1)
        documents: list[str | dict] = Field(min_length=1)
        top_n: int | None = Field(default=None, ge=1)
        return_documents: bool = False
        model: str | None = None
        max_tokens_per_doc: int | None = Field(default=None, ge=1, description="accepted for Cohere clients; texts are cut at the server's max_text_chars instead")

    app = FastAPI(title="rerank-finetune service", version="1", description=__doc__)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError):
        service.count(errors=1)
        return JSONResponse(status_code=exc.status, content={"error": exc.message, "error_type": exc.error_type})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        service.count(errors=1)
        def problem(e: dict) -> str:
            if e.get("type") == "json_invalid":  # loc is ("body", <character offset>)
                return f"the body is not valid JSON ({e.get('ctx', {}).get('error', e.get('msg'))} at character {e.get('loc', (None, '?'))[-1]})"
            return f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"

        problems = "; ".join(problem(e) for e in exc.errors())
        return JSONResponse(status_code=422, content={"error": problems, "error_type": "validation"})

    @app.middleware("http")
    async def _limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            service.count(errors=1)
            return JSONResponse(status_code=413, content={"error": f"body of {length} bytes is over the limit of {max_body_bytes}", "error_type": "payload_too_large"})
        return await call_next(request)

    def _auth(authorization: str | None = Header(default=None)):
        if api_key is None:
            return
        if authorization != f"Bearer {api_key}":
            raise ServiceError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", "unauthorized")

    def _texts(texts: list, truncate: bool) -> list[str]:
        if len(texts) > service.max_documents:
            raise ServiceError(413, f"{len(texts)} documents; at most {service.max_documents} a request", "too_many_documents")
        out = []
        for i, t in enumerate(texts):
            t = t.get("text") if isinstance(t, dict) else t
            if not isinstance(t, str):
                raise ServiceError(422, f"documents[{i}] has no text (a string, or an object with 'text')", "validation")
            if len(t) > service.max_text_chars:
                if not truncate:
                    raise ServiceError(413, f"text {i} has {len(t)} characters, over {service.max_text_chars}, and truncate is false", "text_too_long")
                t = t[: service.max_text_chars]
            out.append(t)
        return out

    def _timed(fn):
        t0 = time.perf_counter()
        service.count(requests=1)
        try:
            return fn()
        finally:
            service.count(seconds=time.perf_counter() - t0)

    @app.post("/rerank", dependencies=[Depends(_auth)])
    def rerank_tei(req: TEIRequest):
        def run():
            texts = _texts(req.texts if req.texts is not None else req.passages, req.truncate)
            raw = service.raw_scores(req.query, texts)
            order = sorted(range(len(texts)), key=lambda i: -raw[i])
            if req.top_n is not None:
                order = order[: req.top_n]
            return [
                {"index": i, "score": raw[i] if req.raw_scores else _sigmoid(raw[i]), **({"text": texts[i]} if req.return_text else {})}
                for i in order
            ]

        return _timed(run)

    def _cohere(req: CohereRequest, version: str):
        def run():
            texts = _texts(req.documents, True)
            raw = service.raw_scores(req.query, texts)
            order = sorted(range(len(texts)), key=lambda i: -raw[i])[: req.top_n or len(texts)]
            results = [
                {"index": i, "relevance_score": _sigmoid(raw[i]), **({"document": {"text": texts[i]}} if req.return_documents else {})}
                for i in order
            ]
            return {"id": str(uuid.uuid4()), "results": results, "meta": {"api_version": {"version": version}, "billed_units": {"search_units": 1}}}

        return _timed(run)

    @app.post("/v1/rerank", dependencies=[Depends(_auth)])
    def rerank_cohere_v1(req: CohereRequest):
        return _cohere(req, "1")

    @app.post("/v2/rerank", dependencies=[Depends(_auth)])
    def rerank_cohere_v2(req: CohereRequest):
        return _cohere(req, "2")

    @app.get("/health")
    def health():
        return {"status": "ok", "model": service.model_name, "cache": type(service.cache).__name__}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics():
        return service.metrics_text()

    return app


def load_service(model_dir: str, backend: str = "torch", device: str | None = None, max_batch: int = 64, max_wait_ms: float = 5.0,
                 cache_size: int = 100_000, max_documents: int = 1000, redis_url: str | None = None,
                 onnx_file: str = "model.onnx", precision: str = "f32") -> RerankService:
    """A :class:`RerankService` over a saved model folder, loaded once: ``backend="torch"`` (any cross-encoder
    folder, the bridge included), ``"onnx"`` (a bridge exported by :func:`rerank_utils.models.export.export_onnx`,
    on onnxruntime; ``onnx_file="model_qint8.onnx"`` for the int8 model) or ``"openvino"`` (the same export
    on OpenVINO; ``precision="bf16"`` computes in bf16 there). The cache is Redis when ``redis_url`` or the ``REDIS_URL`` environment variable is set."""
    reranker = load_reranker(model_dir, backend=backend, device=device, onnx_file=onnx_file, precision=precision)
    scorer = RawScorer(reranker)  # raw scores from every backend: the service applies the sigmoid itself
    return RerankService(MicroBatcher(scorer, max_batch=max_batch, max_wait_ms=max_wait_ms), model_name=Path(model_dir).name,
                         max_documents=max_documents, cache=make_cache(cache_size, redis_url))


def serve(model_dir: str, host: str = "127.0.0.1", port: int = 8080, backend: str = "torch", api_key: str | None = None, **kwargs) -> None:
    """Load ``model_dir`` once and serve it with uvicorn until stopped (Ctrl-C / SIGTERM stop it cleanly)."""
    service = load_service(model_dir, backend=backend, **kwargs)
    try:
        uvicorn.run(create_app(service, api_key=api_key), host=host, port=port, log_level="info")
    finally:
        if isinstance(service.scorer, MicroBatcher):
            service.scorer.close()
