""":class:`MicroBatcher`: requests arriving together are scored in one forward pass (up to ``max_batch`` pairs,
waiting at most ``max_wait_ms``), each caller getting its own scores back; :class:`RawScorer` makes a
``CrossEncoder`` return raw logits so the service applies the sigmoid itself.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

import torch


class MicroBatcher:
    """Many small concurrent requests share one forward pass: each ``predict`` call queues its pairs and
    waits; a worker thread takes what is queued (whole requests, at most ``max_batch`` pairs together unless
    one request alone is larger, waiting at most ``max_wait_ms`` for more after the first) and scores it in
    one ``scorer.predict``. A drop-in scorer for
    :class:`~rerank_utils.serving.app.RerankService`; ``batches`` / ``pairs`` / ``largest_batch`` count what it did."""
    def __init__(self, scorer: Any, max_batch: int = 64, max_wait_ms: float = 5.0, batch_size: int = 32):

        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch={max_batch} (>= 1), max_wait_ms={max_wait_ms} (>= 0)")
        self.scorer, self.max_batch, self.max_wait, self.batch_size = scorer, max_batch, max_wait_ms / 1000, batch_size
        self._queue: "queue.Queue" = queue.Queue()
        self.batches = self.pairs = self.largest_batch = 0
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="rerank-micro-batcher", daemon=True)
        self._worker.start()

    def predict(self, pairs, batch_size: int = 32, show_progress_bar: bool = False):
        if self._stop.is_set():
            raise RuntimeError("MicroBatcher is closed")
        pairs = list(pairs)
        if not pairs:
            return []
        fut: Future = Future()
        self._queue.put((pairs, fut))
        return fut.result()

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
        return self.model.predict(list(pairs), batch_size=batch_size, show_progress_bar=show_progress_bar, activation_fn=torch.nn.Identity())
