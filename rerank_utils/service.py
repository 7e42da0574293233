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
in-process LRU, or in Redis when ``REDIS_URL`` is set (:class:`RedisScoreCache`, shared by every worker and
replica). Serve a model folder with :func:`load_service` + :func:`create_app` (``uvicorn`` runs it), or
``rerank-utils serve``; :class:`BackgroundServer` runs one in a thread (notebooks, tests) and
:func:`load_test` measures one under concurrent clients.

Introduced in notebook ``05_deployment``.
"""

# No `from __future__ import annotations` here: FastAPI reads the route signatures' annotations at runtime,
# and the request models are local to create_app.
import hashlib
import logging
import math
import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence


class ScoreCache:
    """A thread-safe LRU of scores keyed by ``(model, query, document)``."""

    def __init__(self, max_entries: int = 100_000):
        if max_entries < 0:
            raise ValueError(f"max_entries={max_entries}: must be >= 0 (0 disables the cache)")
        self.max_entries = max_entries
        self._data: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str, str]) -> float | None:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key: tuple[str, str, str], value: float) -> None:
        if self.max_entries == 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def get_many(self, keys: Sequence[tuple[str, str, str]]) -> list[float | None]:
        return [self.get(k) for k in keys]

    def put_many(self, items: Sequence[tuple[tuple[str, str, str], float]]) -> None:
        for key, value in items:
            self.put(key, value)

    def __len__(self) -> int:
        return len(self._data)


class RedisScoreCache:
    """The score cache in Redis, shared by every worker process and replica: one string key per
    ``(model, query, document)`` (``<prefix>`` + SHA-256 of the three, so long texts make short keys), the
    float as its value, an optional TTL. Reads and writes of one request go in one round trip (MGET, and a
    pipeline of SET). Redis failing mid-run never fails a request: the scores are computed, the error is
    logged and counted in ``errors``. An unreachable server at start is an error that names the URL."""

    def __init__(self, url: str, prefix: str = "rerank:", ttl_seconds: int | None = 7 * 24 * 3600, client: Any = None,
                 timeout_seconds: float = 2.0):
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - redis is in the deploy and dev extras
            raise ImportError("REDIS_URL is set but the redis client is missing: pip install -e '.[deploy]'") from exc
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds={ttl_seconds}: must be > 0, or None for no expiry")
        self.url, self.prefix, self.ttl = url, prefix, ttl_seconds
        self.client = client or redis.Redis.from_url(url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds)
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise ConnectionError(f"Redis at {url} (REDIS_URL) did not answer: {exc}. Start redis-server, fix REDIS_URL, or unset it to use the in-process cache") from exc
        self._redis_error = redis.RedisError
        self._lock = threading.Lock()
        self.hits = self.misses = self.errors = 0

    def _key(self, key: tuple[str, str, str]) -> str:
        h = hashlib.sha256()
        for part in key:
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
        return self.prefix + h.hexdigest()

    def get_many(self, keys: Sequence[tuple[str, str, str]]) -> list[float | None]:
        if not keys:
            return []
        try:
            raw = self.client.mget([self._key(k) for k in keys])
        except self._redis_error as exc:
            logging.getLogger(__name__).warning("Redis read failed (%s): scoring without the cache", exc)
            with self._lock:
                self.errors += 1
                self.misses += len(keys)
            return [None] * len(keys)
        out = [None if v is None else float(v) for v in raw]
        with self._lock:
            found = sum(v is not None for v in out)
            self.hits += found
            self.misses += len(out) - found
        return out

    def put_many(self, items: Sequence[tuple[tuple[str, str, str], float]]) -> None:
        if not items:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, value in items:
                pipe.set(self._key(key), repr(float(value)), ex=self.ttl)
            pipe.execute()
        except self._redis_error as exc:
            logging.getLogger(__name__).warning("Redis write failed (%s): scores not cached", exc)
            with self._lock:
                self.errors += 1

    def get(self, key: tuple[str, str, str]) -> float | None:
        return self.get_many([key])[0]

    def put(self, key: tuple[str, str, str], value: float) -> None:
        self.put_many([(key, value)])

    def __len__(self) -> int:
        """Keys under this cache's prefix (SCAN: for tests and notebooks, not the hot path)."""
        return sum(1 for _ in self.client.scan_iter(match=self.prefix + "*", count=1000))


def make_cache(cache_size: int = 100_000, redis_url: str | None = None) -> "ScoreCache | RedisScoreCache":
    """Redis when ``redis_url`` (default: the ``REDIS_URL`` environment variable) is set, else the in-process
    LRU of ``cache_size`` entries (0 disables it)."""
    redis_url = redis_url if redis_url is not None else os.environ.get("REDIS_URL") or None
    return RedisScoreCache(redis_url) if redis_url else ScoreCache(cache_size)


@dataclass
class RerankService:
    """What the routes call: limits, the cache, counters, and ``score(query, texts)`` through ``scorer``
    (anything with ``predict(pairs, batch_size=...)`` returning raw scores, e.g. a ``CrossEncoder`` asked for
    logits or :class:`~rerank_utils.bridge.OnnxBridgeReranker`)."""

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
        c = self.counters
        lines = [
            "# HELP rerank_requests_total Rerank requests received.", "# TYPE rerank_requests_total counter",
            f"rerank_requests_total {int(c['requests'])}",
            "# HELP rerank_errors_total Rerank requests refused or failed.", "# TYPE rerank_errors_total counter",
            f"rerank_errors_total {int(c['errors'])}",
            "# HELP rerank_pairs_scored_total (query, document) pairs scored by the model.", "# TYPE rerank_pairs_scored_total counter",
            f"rerank_pairs_scored_total {int(c['pairs_scored'])}",
            "# HELP rerank_request_seconds_total Seconds spent in rerank requests.", "# TYPE rerank_request_seconds_total counter",
            f"rerank_request_seconds_total {c['seconds']:.6f}",
            "# HELP rerank_cache_hits_total Scores served from the cache.", "# TYPE rerank_cache_hits_total counter",
            f"rerank_cache_hits_total {self.cache.hits}",
            "# HELP rerank_cache_misses_total Scores not in the cache.", "# TYPE rerank_cache_misses_total counter",
            f"rerank_cache_misses_total {self.cache.misses}",
        ]
        if hasattr(self.cache, "errors"):  # Redis
            lines += ["# HELP rerank_cache_errors_total Redis calls that failed (scored without the cache).",
                      "# TYPE rerank_cache_errors_total counter", f"rerank_cache_errors_total {self.cache.errors}"]
        if hasattr(self.scorer, "batches"):  # a MicroBatcher
            lines += [
                "# HELP rerank_batches_total Forward passes run by the micro-batcher.", "# TYPE rerank_batches_total counter",
                f"rerank_batches_total {self.scorer.batches}",
                "# HELP rerank_batch_pairs_max Largest number of pairs in one forward pass.", "# TYPE rerank_batch_pairs_max gauge",
                f"rerank_batch_pairs_max {self.scorer.largest_batch}",
            ]
        return "\n".join(lines) + "\n"


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def create_app(service: RerankService, api_key: str | None = None, max_body_bytes: int = 2_000_000):
    """The FastAPI app over ``service``. ``api_key``: when set, the rerank routes need ``Authorization:
    Bearer <api_key>`` (``/health``, ``/metrics`` and ``/docs`` stay open)."""
    from fastapi import Depends, FastAPI, Header, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse
    from pydantic import BaseModel, Field, model_validator

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


class MicroBatcher:
    """Many small concurrent requests share one forward pass: each ``predict`` call queues its pairs and
    waits; a worker thread takes what is queued (whole requests, at most ``max_batch`` pairs together unless
    one request alone is larger, waiting at most ``max_wait_ms`` for more after the first) and scores it in
    one ``scorer.predict``. A drop-in scorer for
    :class:`RerankService`; ``batches`` / ``pairs`` / ``largest_batch`` count what it did."""

    def __init__(self, scorer: Any, max_batch: int = 64, max_wait_ms: float = 5.0, batch_size: int = 32):
        import queue

        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch={max_batch} (>= 1), max_wait_ms={max_wait_ms} (>= 0)")
        self.scorer, self.max_batch, self.max_wait, self.batch_size = scorer, max_batch, max_wait_ms / 1000, batch_size
        self._queue: "queue.Queue" = queue.Queue()
        self.batches = self.pairs = self.largest_batch = 0
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="rerank-micro-batcher", daemon=True)
        self._worker.start()

    def predict(self, pairs, batch_size: int = 32, show_progress_bar: bool = False):
        from concurrent.futures import Future

        if self._stop.is_set():
            raise RuntimeError("MicroBatcher is closed")
        pairs = list(pairs)
        if not pairs:
            return []
        fut: Future = Future()
        self._queue.put((pairs, fut))
        return fut.result()

    def _run(self) -> None:
        import queue

        pending = None  # a request that did not fit into the last forward pass: it opens the next one
        while not self._stop.is_set():
            if pending is not None:
                first, pending = pending, None
            else:
                try:
                    first = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
            jobs, n = [first], len(first[0])  # one request larger than max_batch still runs, alone
            deadline = time.perf_counter() + self.max_wait
            while n < self.max_batch:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    job = self._queue.get(timeout=left)
                except queue.Empty:
                    break
                if n + len(job[0]) > self.max_batch:
                    pending = job
                    break
                jobs.append(job)
                n += len(job[0])
            flat = [p for pairs, _ in jobs for p in pairs]
            try:
                scores = list(self.scorer.predict(flat, batch_size=self.batch_size, show_progress_bar=False))
            except Exception as err:  # every waiting request gets the error, the worker lives on
                for _, fut in jobs:
                    fut.set_exception(err)
                continue
            self.batches += 1
            self.pairs += len(flat)
            self.largest_batch = max(self.largest_batch, len(flat))
            i = 0
            for pairs, fut in jobs:
                fut.set_result(scores[i : i + len(pairs)])
                i += len(pairs)

    def close(self) -> None:
        self._stop.set()
        self._worker.join(timeout=2)


class RawScorer:
    """``predict`` returning raw scores (logits; ``scale x cosine`` for a bridge) from a ``CrossEncoder``,
    whatever activation it keeps; the service applies the sigmoid itself unless ``raw_scores``."""

    def __init__(self, model: Any):
        self.model = model

    def predict(self, pairs, batch_size: int = 32, show_progress_bar: bool = False):
        import torch

        return self.model.predict(list(pairs), batch_size=batch_size, show_progress_bar=show_progress_bar, activation_fn=torch.nn.Identity())


def load_service(model_dir: str, backend: str = "torch", device: str | None = None, max_batch: int = 64, max_wait_ms: float = 5.0,
                 cache_size: int = 100_000, max_documents: int = 1000, redis_url: str | None = None,
                 onnx_file: str = "model.onnx") -> RerankService:
    """A :class:`RerankService` over a saved model folder, loaded once: ``backend="torch"`` (any cross-encoder
    folder, the bridge included), ``"onnx"`` (a bridge exported by :func:`rerank_utils.bridge.export_onnx`,
    on onnxruntime; ``onnx_file="model_qint8.onnx"`` for the int8 model) or ``"openvino"`` (the same export
    on OpenVINO). The cache is Redis when ``redis_url`` or the ``REDIS_URL`` environment variable is set."""
    from pathlib import Path

    if backend in ("onnx", "openvino"):
        from .bridge import OnnxBridgeReranker

        scorer = OnnxBridgeReranker(model_dir, file_name=onnx_file, runtime="onnxruntime" if backend == "onnx" else "openvino")
    elif backend == "torch":
        from .models import load_cross_encoder

        scorer = RawScorer(load_cross_encoder(model_dir, device=device))
    else:
        raise ValueError(f"backend={backend!r}: choose 'torch', 'onnx' or 'openvino'")
    return RerankService(MicroBatcher(scorer, max_batch=max_batch, max_wait_ms=max_wait_ms), model_name=Path(model_dir).name,
                         max_documents=max_documents, cache=make_cache(cache_size, redis_url))


def serve(model_dir: str, host: str = "127.0.0.1", port: int = 8080, backend: str = "torch", api_key: str | None = None, **kwargs) -> None:
    """Load ``model_dir`` once and serve it with uvicorn until stopped (Ctrl-C / SIGTERM stop it cleanly)."""
    import uvicorn

    service = load_service(model_dir, backend=backend, **kwargs)
    try:
        uvicorn.run(create_app(service, api_key=api_key), host=host, port=port, log_level="info")
    finally:
        if isinstance(service.scorer, MicroBatcher):
            service.scorer.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class BackgroundServer:
    """A :class:`RerankService` served by uvicorn in a background thread of this process, for notebooks and
    tests: ``with BackgroundServer(service) as srv: httpx.post(srv.url + "/rerank", ...)``. ``stop()`` (or
    leaving the ``with``) shuts uvicorn down the way Ctrl-C does, waits for it and closes the micro-batcher."""

    def __init__(self, service: RerankService, host: str = "127.0.0.1", port: int | None = None, api_key: str | None = None,
                 start_timeout: float = 30.0):
        import uvicorn

        self.service, self.host, self.port = service, host, port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(create_app(service, api_key=api_key), host=host, port=self.port, log_level="warning"))
        self._server.install_signal_handlers = lambda: None  # not the main thread (uvicorn < 0.29 asks)
        self.exit_code: int | None = None

        def run() -> None:
            try:
                self._server.run()
            except SystemExit as exc:  # uvicorn exits this way when it cannot bind the port
                self.exit_code = exc.code if isinstance(exc.code, int) else 1

        self._thread = threading.Thread(target=run, name="rerank-service", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + start_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the service did not start on {self.url} (uvicorn exit code {self.exit_code}; is the port taken?)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the service did not start on {self.url} within {start_timeout} s")
            time.sleep(0.02)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=timeout)
        if isinstance(self.service.scorer, MicroBatcher):
            self.service.scorer.close()
        if self._thread.is_alive():
            raise RuntimeError(f"the service on {self.url} did not stop within {timeout} s")

    def __enter__(self) -> "BackgroundServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def load_test(url: str, bodies: Sequence[dict], concurrency: int = 16, route: str = "/v2/rerank", api_key: str | None = None,
              timeout: float = 60.0) -> dict[str, Any]:
    """Send every body in ``bodies`` once, from ``concurrency`` clients at the same time (each its own
    keep-alive ``httpx.Client``, taking the next body until none is left), and measure: requests, errors
    (any status but 200, or a failed connection), throughput (requests/s over the wall time), p50 / p95 /
    max latency in ms, and the status codes seen. Stops by itself when the bodies run out."""
    import httpx
    import numpy as np
    from concurrent.futures import ThreadPoolExecutor

    if concurrency < 1 or not bodies:
        raise ValueError(f"load_test: concurrency={concurrency} (>= 1) and at least one body ({len(bodies)} given)")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    lock, next_i = threading.Lock(), [0]
    latencies: list[float] = []
    statuses: dict[str, int] = {}

    def client(_: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=timeout) as c:
            while True:
                with lock:
                    i = next_i[0]
                    next_i[0] += 1
                if i >= len(bodies):
                    return
                t0 = time.perf_counter()
                try:
                    status = str(c.post(route, json=bodies[i]).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(dt)
                    statuses[status] = statuses.get(status, 0) + 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client, range(concurrency)))
    wall = time.perf_counter() - t0
    lat = np.array(latencies)
    return {
        "route": route, "requests": len(latencies), "concurrency": concurrency,
        "errors": sum(n for s, n in statuses.items() if s != "200"), "statuses": dict(sorted(statuses.items())),
        "seconds": round(wall, 3), "throughput_rps": round(len(latencies) / wall, 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 2), "p95_ms": round(float(np.percentile(lat, 95)), 2),
        "max_ms": round(float(lat.max()), 2),
    }


def rerank_bodies(dataset: Any, run: dict[str, dict[str, float]], top_k: int = 20, n: int | None = None) -> list[dict]:
    """Cohere-shaped request bodies (``{query, documents}``) from a first stage's ``run`` on ``dataset``
    (a :class:`~rerank_utils.data.RetrievalDataset`): each query with its top-``k`` texts, cycled until there
    are ``n`` bodies (default: one per query), for :func:`load_test`."""
    qids = [q for q in dataset.queries if run.get(q)]
    if not qids:
        raise ValueError("rerank_bodies: the run has no candidates for any query of the dataset")
    n = len(qids) if n is None else n
    bodies = []
    for i in range(n):
        q = qids[i % len(qids)]
        docs = sorted(run[q], key=lambda d: -run[q][d])[:top_k]
        bodies.append({"query": dataset.queries[q], "documents": [dataset.corpus[d] for d in docs]})
    return bodies
