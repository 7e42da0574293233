"""A rerank HTTP service (FastAPI) that real clients already speak.

* ``POST /rerank``: Hugging Face text-embeddings-inference's shape (``query``, ``texts``, ``raw_scores``,
  ``return_text``, ``truncate``) -> ``[{index, score, text?}]``, every text, best first. The guide's body
  ``{query, passages, top_n}`` is accepted on the same route.
* ``POST /v1/rerank`` and ``/v2/rerank``: Cohere's shape (``query``, ``documents``, ``top_n``,
  ``return_documents``) -> ``{id, results: [{index, relevance_score, document?}], meta}``, so LlamaIndex's
  ``CohereRerank(base_url=...)`` and LangChain's Cohere client work unchanged.
* ``GET /health``, ``GET /metrics`` (Prometheus text), OpenAPI at ``/docs``; an optional API key (Bearer) on
  the rerank routes only.

Bad input never gives a 500, and every refusal has the body ``{error, error_type}``: an empty query or list, or
a wrong field -> 422; a body that is not UTF-8 or nested too deeply -> 400; too many documents, or a body over
``max_body_bytes`` however it is sent (chunked too: :class:`~rerank_utils.serving.limits.BodyLimit`) -> 413; a
wrong API key (compared in constant time) -> 401. Under load: more pairs waiting than the queue holds -> 429 with
``Retry-After``; a request not scored within its deadline -> 504; a model that raises -> 503. ``GET /health``
says ``ok``, ``degraded`` (Redis unreachable: scoring goes on without the cache) or ``busy`` (503: the queue is
nearly full or a forward pass has outlasted the deadline), so a load balancer can route around a replica. Scores of ``(model, query, document)`` are cached in an
in-process LRU, or in Redis when ``REDIS_URL`` is set (:class:`~rerank_utils.serving.cache.RedisScoreCache`, shared by every worker and
replica). Serve a model folder with :func:`load_service` + :func:`create_app` (``uvicorn`` runs it), or
``rerank-utils serve``; :class:`~rerank_utils.serving.background.BackgroundServer` runs one in a thread (notebooks, tests) and
:func:`~rerank_utils.serving.load_client.load_test` measures one under concurrent clients.

Introduced in notebook ``05_deployment``.
"""

# No `from __future__ import annotations` here: FastAPI reads the route signatures' annotations at runtime,
# and the request models are local to create_app.
import hmac
import math
import signal
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
from pydantic import BaseModel, Field, field_validator, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from rerank_utils.models.calibration import PlattCalibration, load_calibration
from rerank_utils.models.loading import load_reranker
from rerank_utils.serving.batching import MicroBatcher, RawScorer, measure_pairs_per_s
from rerank_utils.serving.cache import ScoreCache, make_cache
from rerank_utils.serving.errors import DeadlineExceeded, Overloaded, ScorerFailed
from rerank_utils.serving.limits import BodyLimit
from rerank_utils.serving.metrics import metrics_text

COUNTERS = ("requests", "errors", "pairs_scored", "seconds", "overloaded", "timeouts", "scorer_failures")


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
    deadline_seconds: float = 30.0  # a request not scored within this many seconds of its arrival gets a 504
    calibration: PlattCalibration | None = None  # the model folder's calibration.json: probabilities a client can threshold
    counters: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def raw_scores(self, query: str, texts: Sequence[str], timeout: float | None = None) -> list[float]:
        """Raw scores of ``(query, text)`` for every text, from the cache where it has them. ``timeout``: seconds
        left of the request's deadline (a :class:`MicroBatcher` scorer enforces it). Raises
        :class:`~rerank_utils.serving.errors.Overloaded`, :class:`~rerank_utils.serving.errors.DeadlineExceeded`
        or, when the model raises, :class:`~rerank_utils.serving.errors.ScorerFailed`."""
        keys = [(self.model_name, query, t) for t in texts]
        scores: list[float | None] = list(self.cache.get_many(keys))
        todo = [i for i, s in enumerate(scores) if s is None]
        if todo:
            pairs = [(query, texts[i]) for i in todo]
            deadline = {"timeout": timeout} if isinstance(self.scorer, MicroBatcher) else {}  # only it takes one
            try:
                new = self.scorer.predict(pairs, batch_size=self.batch_size, show_progress_bar=False, **deadline)
            except (Overloaded, DeadlineExceeded):
                raise
            except Exception as exc:  # the model's own failure: a 503 for this request, the service lives on
                raise ScorerFailed(exc) from exc
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

    def probability(self, raw: float) -> float:
        """The probability returned for a raw score: calibrated (``sigmoid(a * s + b)``) where the model has a
        calibration, else ``sigmoid(s)``; float64 either way (the order is always the raw scores')."""
        if self.calibration is not None:
            return float(self.calibration.probability(raw))
        return _sigmoid(raw)

    def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded" | "busy", ...}``: busy when the micro-batcher's queue is over 80 % full
        or its forward pass has run longer than the deadline; degraded when the Redis cache does not answer."""
        out: dict[str, Any] = {"status": "ok", "model": self.model_name, "cache": type(self.cache).__name__,
                               "calibrated": self.calibration is not None}
        if hasattr(self.cache, "check") and not self.cache.check():
            out["status"], out["problem"] = "degraded", f"the Redis cache at {self.cache.url} does not answer: scoring without it"
        if isinstance(self.scorer, MicroBatcher):
            mb = self.scorer
            out.update(queued_pairs=mb.queued_pairs, max_queue_pairs=mb.max_queue_pairs)
            if mb.max_queue_pairs is not None and mb.queued_pairs >= 0.8 * mb.max_queue_pairs:
                out["status"], out["problem"] = "busy", f"{mb.queued_pairs} of at most {mb.max_queue_pairs} pairs are waiting to be scored"
            elif mb.forward_seconds() > self.deadline_seconds:
                out["status"], out["problem"] = "busy", f"one forward pass has run for {mb.forward_seconds():.0f} s, over the {self.deadline_seconds:g} s deadline"
        return out

    def metrics_text(self) -> str:
        """The counters in the Prometheus text format (:mod:`rerank_utils.serving.metrics`)."""
        return metrics_text(self)


def _not_blank(cls, query: str) -> str:
    """A request model's check (``field_validator("query")``): a query of whitespace alone is refused."""
    if not query.strip():
        raise ValueError("the query is blank (only whitespace): send the search text")
    return query


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def create_app(service: RerankService, api_key: str | None = None, max_body_bytes: int = 2_000_000):
    """The FastAPI app over ``service``. ``api_key``: when set, the rerank routes need ``Authorization:
    Bearer <api_key>`` (``/health``, ``/metrics`` and ``/docs`` stay open). ``max_body_bytes``: the largest
    request body, counted as it arrives."""
    class ServiceError(Exception):
        def __init__(self, status: int, message: str, error_type: str, headers: dict | None = None):
            self.status, self.message, self.error_type, self.headers = status, message, error_type, headers

    class TEIRequest(BaseModel):
        query: str = Field(min_length=1, description="the search query")
        texts: list[str] | None = Field(default=None, description="texts to rerank (TEI)")
        passages: list[str] | None = Field(default=None, description="the guide's name for texts")
        raw_scores: bool = False
        return_text: bool = False
        truncate: bool = True
        top_n: int | None = Field(default=None, ge=1, description="keep the best top_n (the guide's body)")

        _blank = field_validator("query")(_not_blank)

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

        _blank = field_validator("query")(_not_blank)

    app = FastAPI(title="rerank-finetune service", version="1", description=__doc__)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError):
        service.count(errors=1)
        return JSONResponse(status_code=exc.status, content={"error": exc.message, "error_type": exc.error_type}, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        """FastAPI's own refusals (a body it cannot decode, an unknown route or method) in the service's shape."""
        service.count(errors=1)
        cause, message, error_type = exc.__cause__, str(exc.detail), {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        if isinstance(cause, UnicodeDecodeError):
            message, error_type = f"the body is not UTF-8 text (byte {cause.object[cause.start]:#04x} at position {cause.start}): send JSON encoded as UTF-8", "invalid_body"
        elif isinstance(cause, RecursionError):
            message, error_type = "the body's JSON is nested too deeply to parse: a rerank request needs two levels", "invalid_body"
        elif exc.status_code == 404:
            message = f"no route {request.url.path}: POST /rerank, /v1/rerank or /v2/rerank; GET /health, /metrics or /docs"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse(status_code=exc.status_code, content={"error": message, "error_type": error_type}, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        service.count(errors=1)
        def problem(e: dict) -> str:
            if e.get("type") == "json_invalid":  # loc is ("body", <character offset>)
                return f"the body is not valid JSON ({e.get('ctx', {}).get('error', e.get('msg'))} at character {e.get('loc', (None, '?'))[-1]})"
            return f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"

        problems = "; ".join(problem(e) for e in exc.errors())
        return JSONResponse(status_code=422, content={"error": problems, "error_type": "validation"})

    def _auth(authorization: str | None = Header(default=None)):
        sent, expected = (authorization or "").encode("utf-8"), f"Bearer {api_key}".encode("utf-8")
        if api_key is not None and not hmac.compare_digest(sent, expected):  # constant time
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

    def _ranked(request: Request, query: str, docs: list, truncate: bool, top_n: int | None, respond):
        """``respond(texts, raw, order)``: ``docs`` scored against ``query`` within the request's deadline, ``order``
        the indices of the best ``top_n`` (all by default), best first. Counts the request; a refusal -> its status."""
        t0 = time.perf_counter()
        service.count(requests=1)
        arrived = getattr(request.state, "arrived", t0)
        try:
            left = service.deadline_seconds - (t0 - arrived)
            if left <= 0:  # it waited for a worker thread past its deadline
                raise DeadlineExceeded(service.deadline_seconds)
            texts = _texts(docs, truncate)
            raw = service.raw_scores(query, texts, timeout=left)
            return respond(texts, raw, sorted(range(len(texts)), key=lambda i: -raw[i])[:top_n])
        except Overloaded as exc:
            service.count(overloaded=1)
            raise ServiceError(429, str(exc), "overloaded", headers={"Retry-After": str(exc.retry_after)}) from exc
        except DeadlineExceeded as exc:
            service.count(timeouts=1)
            raise ServiceError(504, str(DeadlineExceeded(service.deadline_seconds)), "timeout") from exc  # the whole deadline, not what was left
        except ScorerFailed as exc:
            service.count(scorer_failures=1)
            raise ServiceError(503, str(exc), "scorer_failed") from exc
        finally:
            service.count(seconds=time.perf_counter() - t0)

    @app.post("/rerank", dependencies=[Depends(_auth)])
    def rerank_tei(req: TEIRequest, request: Request):
        def respond(texts, raw, order):
            return [
                {"index": i, "score": raw[i] if req.raw_scores else service.probability(raw[i]), **({"text": texts[i]} if req.return_text else {})}
                for i in order
            ]

        return _ranked(request, req.query, req.texts if req.texts is not None else req.passages, req.truncate, req.top_n, respond)

    def _cohere(req: CohereRequest, request: Request, version: str):
        def respond(texts, raw, order):
            results = [
                {"index": i, "relevance_score": service.probability(raw[i]), **({"document": {"text": texts[i]}} if req.return_documents else {})}
                for i in order
            ]
            return {"id": str(uuid.uuid4()), "results": results, "meta": {"api_version": {"version": version}, "billed_units": {"search_units": 1}}}

        return _ranked(request, req.query, req.documents, True, req.top_n, respond)

    @app.post("/v1/rerank", dependencies=[Depends(_auth)])
    def rerank_cohere_v1(req: CohereRequest, request: Request):
        return _cohere(req, request, "1")

    @app.post("/v2/rerank", dependencies=[Depends(_auth)])
    def rerank_cohere_v2(req: CohereRequest, request: Request):
        return _cohere(req, request, "2")

    @app.get("/health")
    def health():
        state = service.health()
        return JSONResponse(status_code=503 if state["status"] == "busy" else 200, content=state)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics():
        return service.metrics_text()

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, on_refusal=lambda: service.count(errors=1))
    return app


def load_service(model_dir: str, backend: str = "torch", device: str | None = None, max_batch: int = 64, max_wait_ms: float = 5.0,
                 cache_size: int = 100_000, max_documents: int = 1000, redis_url: str | None = None,
                 onnx_file: str = "model.onnx", precision: str = "f32", deadline_seconds: float = 30.0,
                 max_queue_pairs: int | None = None, queue_seconds: float = 5.0) -> RerankService:
    """A :class:`RerankService` over a saved model folder, loaded once: ``backend="torch"`` (any cross-encoder
    folder, the bridge included), ``"onnx"`` (a bridge exported by :func:`rerank_utils.models.export.export_onnx`,
    on onnxruntime; ``onnx_file="model_qint8.onnx"`` for the int8 model) or ``"openvino"`` (the same export
    on OpenVINO; ``precision="bf16"`` computes in bf16 there). The cache is Redis when ``redis_url`` or the ``REDIS_URL`` environment variable is set.
    The folder's ``calibration.json`` (saved by training), when there is one, calibrates the probabilities returned.

    Back-pressure: at most ``max_queue_pairs`` pairs wait to be scored; by default as many as the model scores in
    ``queue_seconds`` at its pairs/s measured here once at load (:func:`~rerank_utils.serving.batching.measure_pairs_per_s`),
    and never fewer than ``max_batch``. ``deadline_seconds``: the most a request may take from its arrival."""
    if deadline_seconds <= 0 or queue_seconds <= 0:
        raise ValueError(f"deadline_seconds={deadline_seconds}, queue_seconds={queue_seconds}: both must be > 0")
    reranker = load_reranker(model_dir, backend=backend, device=device, onnx_file=onnx_file, precision=precision)
    scorer = RawScorer(reranker)  # raw scores from every backend: the service applies the sigmoid itself
    if max_queue_pairs is None:
        max_queue_pairs = max(max_batch, int(measure_pairs_per_s(scorer) * queue_seconds))
    return RerankService(MicroBatcher(scorer, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue_pairs=max_queue_pairs),
                         model_name=Path(model_dir).name, max_documents=max_documents, cache=make_cache(cache_size, redis_url),
                         deadline_seconds=deadline_seconds, calibration=load_calibration(model_dir))


def _stopped(signum, frame) -> None:
    raise SystemExit(0)


def serve(model_dir: str, host: str = "127.0.0.1", port: int = 8080, backend: str = "torch", api_key: str | None = None,
          max_body_bytes: int = 2_000_000, **kwargs) -> None:
    """Load ``model_dir`` once and serve it with uvicorn until stopped (Ctrl-C / SIGTERM stop it cleanly: requests
    in flight finish, new connections are refused, the call returns)."""
    service = load_service(model_dir, backend=backend, **kwargs)
    print(f"serving {model_dir} ({backend}) on http://{host}:{port}: at most {service.scorer.max_queue_pairs} pairs queued, "
          f"deadline {service.deadline_seconds:g} s", flush=True)
    if threading.current_thread() is threading.main_thread():
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler it found: this one
        # makes that a clean exit (status 0, as process managers expect of a requested stop) instead of death by signal
        signal.signal(signal.SIGTERM, _stopped)
    try:
        uvicorn.run(create_app(service, api_key=api_key, max_body_bytes=max_body_bytes), host=host, port=port, log_level="info")
    finally:
        if isinstance(service.scorer, MicroBatcher):
            service.scorer.close()
