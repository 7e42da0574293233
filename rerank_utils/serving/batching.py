""":class:`MicroBatcher`: requests arriving together are scored in one forward pass (up to ``max_batch`` pairs,
waiting at most ``max_wait_ms``), each caller getting its own scores back, with a bounded queue (past it:
:class:`~rerank_utils.serving.errors.Overloaded`) and a deadline per caller
(:class:`~rerank_utils.serving.errors.DeadlineExceeded`); :func:`measure_pairs_per_s` times a scorer once;
:class:`RawScorer` makes a ``CrossEncoder`` return raw logits so the service applies the sigmoid itself.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from rerank_utils.models.scores import raw_scores
from rerank_utils.serving.errors import DeadlineExceeded, Overloaded


class MicroBatcher:
    """Many small concurrent requests share one forward pass: each ``predict`` call queues its pairs and
    waits; a worker thread takes what is queued (whole requests, at most ``max_batch`` pairs together unless
    one request alone is larger, waiting at most ``max_wait_ms`` for more after the first) and scores it in
    one ``scorer.predict``. A drop-in scorer for
    :class:`~rerank_utils.serving.app.RerankService`; ``batches`` / ``pairs`` / ``largest_batch`` count what it did.

    Back-pressure: ``max_queue_pairs`` bounds the pairs waiting or being scored (``None``: unbounded). A request
    that would pass it raises :class:`~rerank_utils.serving.errors.Overloaded` at once, with a ``retry_after``
    from the measured pairs/s, unless the queue is empty (one request larger than the bound still runs, alone);
    ``rejected`` counts them. ``predict(..., timeout=s)`` raises
    :class:`~rerank_utils.serving.errors.DeadlineExceeded` after ``s`` seconds (``timeouts`` counts them) and a
    request not yet started is dropped from the queue, so a stuck forward pass never holds a caller forever."""
    def __init__(self, scorer: Any, max_batch: int = 64, max_wait_ms: float = 5.0, batch_size: int = 32,
                 max_queue_pairs: int | None = None):
        if max_batch < 1 or max_wait_ms < 0 or (max_queue_pairs is not None and max_queue_pairs < 1):
            raise ValueError(f"max_batch={max_batch} (>= 1), max_wait_ms={max_wait_ms} (>= 0), max_queue_pairs={max_queue_pairs} (>= 1, or None)")
        self.scorer, self.max_batch, self.max_wait, self.batch_size = scorer, max_batch, max_wait_ms / 1000, batch_size
        self.max_queue_pairs = max_queue_pairs
        self._queue: "queue.Queue" = queue.Queue()
        self.batches = self.pairs = self.largest_batch = 0
        self.queued_pairs = self.rejected = self.timeouts = 0
        self.pairs_per_s: float | None = None  # a moving average over forward passes
        self._busy_since: float | None = None  # when the forward pass now running began
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="rerank-micro-batcher", daemon=True)
        self._worker.start()

    def retry_after(self) -> int:
        """Whole seconds the queued pairs take at the measured pairs/s (1 to 60; 1 before any measurement)."""
        if not self.pairs_per_s:
            return 1
        return int(min(60, max(1, math.ceil(self.queued_pairs / self.pairs_per_s))))

    def forward_seconds(self) -> float:
        """How long the forward pass now running has taken (0 when idle)."""
        started = self._busy_since
        return 0.0 if started is None else time.perf_counter() - started

    def predict(self, pairs, batch_size: int = 32, show_progress_bar: bool = False, timeout: float | None = None):
        if self._stop.is_set():
            raise RuntimeError("MicroBatcher is closed")
        pairs = list(pairs)
        if not pairs:
            return []
        with self._lock:
            if self.max_queue_pairs is not None and self.queued_pairs and self.queued_pairs + len(pairs) > self.max_queue_pairs:
                self.rejected += 1
                raise Overloaded(self.queued_pairs, self.max_queue_pairs, self.retry_after())
            self.queued_pairs += len(pairs)
        fut: Future = Future()
        self._queue.put((pairs, fut))
        try:
            return fut.result(timeout=timeout)
        except FutureTimeout:
            fut.cancel()  # succeeds only if not started yet: then the worker drops it and gives its room back
            with self._lock:
                self.timeouts += 1
            raise DeadlineExceeded(timeout) from None

    def _done(self, jobs) -> None:
        with self._lock:
            self.queued_pairs -= sum(len(pairs) for pairs, _ in jobs)

    def _run(self) -> None:
        pending = None  # a request that did not fit into the last forward pass: it opens the next one
        while not self._stop.is_set():
            if pending is not None:
                first, pending = pending, None
            else:
                try:
                    first = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
            if not first[1].set_running_or_notify_cancel():  # its caller gave up waiting
                self._done([first])
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
                if not job[1].set_running_or_notify_cancel():
                    self._done([job])
                    continue
                jobs.append(job)
                n += len(job[0])
            flat = [p for pairs, _ in jobs for p in pairs]
            self._busy_since = t0 = time.perf_counter()
            try:
                scores = list(self.scorer.predict(flat, batch_size=self.batch_size, show_progress_bar=False))
            except Exception as err:  # every waiting request gets the error, the worker lives on
                for _, fut in jobs:
                    fut.set_exception(err)
                continue
            finally:
                self._busy_since = None
                self._done(jobs)
            rate = len(flat) / max(time.perf_counter() - t0, 1e-9)
            self.pairs_per_s = rate if self.pairs_per_s is None else 0.8 * self.pairs_per_s + 0.2 * rate
            self.batches += 1
            self.pairs += len(flat)
            self.largest_batch = max(self.largest_batch, len(flat))
            i = 0
            for pairs, fut in jobs:
                fut.set_result(scores[i : i + len(pairs)])
                i += len(pairs)

    def close(self) -> None:
        """Stop the worker; requests still queued get an error instead of waiting forever."""
        self._stop.set()
        self._worker.join(timeout=2)
        while True:
            try:
                _, fut = self._queue.get_nowait()
            except queue.Empty:
                return
            if fut.set_running_or_notify_cancel():
                fut.set_exception(RuntimeError("MicroBatcher is closed"))


def measure_pairs_per_s(scorer: Any, pairs: int = 32, batch_size: int = 32) -> float:
    """Pairs/s of ``scorer.predict`` on ``pairs`` pairs of a 10-word query and a 100-word passage (about the
    length of an FAQ answer or a retrieval chunk), after one warm-up call: what
    :func:`~rerank_utils.serving.app.load_service` sizes the queue bound from."""
    query = "how long does the city take to grant a building permit"
    passage = " ".join(["the municipal office reviews each application for a permit within the legal period"] * 8)
    sample = [(query, passage)] * pairs
    scorer.predict(sample[:2], batch_size=batch_size, show_progress_bar=False)
    t0 = time.perf_counter()
    scorer.predict(sample, batch_size=batch_size, show_progress_bar=False)
    return pairs / max(time.perf_counter() - t0, 1e-9)


class RawScorer:
    """``predict`` returning raw scores (logits; ``scale x cosine`` for a bridge) from any reranker
    (:func:`~rerank_utils.models.scores.raw_scores`), whatever activation it keeps; the service turns them into
    probabilities itself (calibrated where the model folder has a calibration) unless ``raw_scores``."""
    def __init__(self, model: Any):
        self.model = model

    def predict(self, pairs, batch_size: int = 32, show_progress_bar: bool = False):
        return raw_scores(self.model, pairs, batch_size=batch_size, show_progress_bar=show_progress_bar)
