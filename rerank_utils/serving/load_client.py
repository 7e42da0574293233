"""A load-test client: :func:`load_test` sends bodies from concurrent clients and measures throughput, p50/p95
latency and the statuses; :func:`rerank_bodies` builds Cohere-shaped bodies from a first stage's run. Used by
notebook ``05_deployment``, ``benchmarks/service_load.py`` and the tests.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import httpx
import numpy as np


def load_test(url: str, bodies: Sequence[dict], concurrency: int = 16, route: str = "/v2/rerank", api_key: str | None = None,
              timeout: float = 60.0) -> dict[str, Any]:
    """Send every body in ``bodies`` once, from ``concurrency`` clients at the same time (each its own
    keep-alive ``httpx.Client``, taking the next body until none is left), and measure: requests, errors
    (any status but 200, or a failed connection), throughput (requests/s over the wall time), p50 / p95 /
    max latency in ms, and the status codes seen. Stops by itself when the bodies run out."""
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
    (a :class:`~rerank_utils.data.records.RetrievalDataset`): each query with its top-``k`` texts, cycled until there
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
