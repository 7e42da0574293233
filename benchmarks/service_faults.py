"""The rerank service under faults, overload and hostile input, as it is deployed: `rerank-utils serve` in its own
process on 127.0.0.1, over the `cpu` profile's reranker (artifacts/cpu/models/reranker, saved by notebook 03), with
its own `redis-server` (started here on a free port) as the score cache. Four phases, one run:

1. **hostile input**: every bad, odd and hostile request of `CASES` (empty and whitespace queries, numbers and nulls
   for texts, wrong types and keys, malformed, non-UTF-8 and deeply nested JSON, 10,000 documents, a 5 MB body with a
   length and a 5 MB chunked one, top_n 0 / -1 / "three", a wrong key): the status and error_type of each; 5xx must be 0.
2. **overload**: the model's capacity measured first (pairs/s, closed loop), then requests sent at a fixed rate of
   4x that capacity for 20 s (open loop: one thread per request, as independent clients): 2xx, 429, other 4xx, 5xx,
   lost (no answer), p50 / p95 / max latency against the deadline.
3. **Redis outage**: a steady load while Redis is stopped and started again on the same port: every answer, what
   /health said during and after, cache hits before, during and after.
4. **SIGTERM** during a load: requests in flight answered, requests after it refused, the exit status.

    .venv/bin/python benchmarks/service_faults.py          # about 2 min on 2 cores; run notebook 03 (cpu) first

Writes results/service_faults.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

OUT = Path(__file__).parent / "results" / "service_faults.json"
KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {**AUTH, "content-type": "application/json"}


def cases() -> list[tuple[str, str, dict]]:
    """(name, route, httpx keyword arguments) of the hostile-input phase."""
    big = ["x" * 1000] * 5000
    return [
        ("empty query", "/rerank", {"json": {"query": "", "texts": ["a"]}}),
        ("whitespace query", "/v2/rerank", {"json": {"query": "   ", "documents": ["a"]}}),
        ("empty list", "/rerank", {"json": {"query": "q", "texts": []}}),
        ("numbers for texts", "/rerank", {"json": {"query": "q", "texts": [1, 2]}}),
        ("nulls for texts", "/v2/rerank", {"json": {"query": "q", "documents": [None]}}),
        ("a string for the list", "/rerank", {"json": {"query": "q", "texts": "abc"}}),
        ("no query", "/v1/rerank", {"json": {"documents": ["a"]}}),
        ("unknown shape", "/rerank", {"json": {"question": "q", "docs": ["a"]}}),
        ("texts and passages", "/rerank", {"json": {"query": "q", "texts": ["a"], "passages": ["b"]}}),
        ("top_n 0", "/v2/rerank", {"json": {"query": "q", "documents": ["a"], "top_n": 0}}),
        ("top_n -1", "/v2/rerank", {"json": {"query": "q", "documents": ["a"], "top_n": -1}}),
        ("top_n 'three'", "/v2/rerank", {"json": {"query": "q", "documents": ["a"], "top_n": "three"}}),
        ("top_n 1.5", "/v2/rerank", {"json": {"query": "q", "documents": ["a"], "top_n": 1.5}}),
        ("top_n 10^9", "/v2/rerank", {"json": {"query": "q", "documents": ["a", "b"], "top_n": 10**9}}),
        ("malformed JSON", "/rerank", {"content": b'{"query": "q", "texts": [', "headers": JSON}),
        ("non-UTF-8 bytes", "/rerank", {"content": b'{"query": "caf\xe9", "texts": ["a"]}', "headers": JSON}),
        ("JSON nested 5,000 deep", "/rerank", {"content": b'{"query": "q", "texts": ' + b"[" * 5000 + b"]" * 5000 + b"}", "headers": JSON}),
        ("10,000 documents", "/v2/rerank", {"json": {"query": "q", "documents": ["a"] * 10_000}}),
        ("5 MB body with a length", "/rerank", {"json": {"query": "q", "texts": big}}),
        ("5 MB body, chunked", "/rerank", {"content": iter([b'{"query": "q", "texts": [' + b",".join([b'"' + b"x" * 1000 + b'"'] * 5000) + b"]}"]),
                                          "headers": JSON}),
        ("Unicode: combining, emoji, RTL, NUL", "/v2/rerank", {"json": {"query": "e\u0301 \U0001F3E0", "documents": ["\u202eroof", "a\x00b"]}}),
        ("a text over max_text_chars, truncate false", "/rerank", {"json": {"query": "q", "texts": ["x" * 30_000], "truncate": False}}),
        ("wrong API key", "/rerank", {"json": {"query": "q", "texts": ["a"]}, "headers": {"Authorization": "Bearer nope"}}),
        ("no API key", "/rerank", {"json": {"query": "q", "texts": ["a"]}, "noauth": True}),
        ("unknown route", "/v3/rerank", {"json": {"query": "q", "documents": ["a"]}}),
    ]


class Server:
    """`rerank-utils serve` in its own process (the console script beside this Python)."""

    def __init__(self, model_dir: str, port: int, *extra: str):
        self.url = f"http://127.0.0.1:{port}"
        cli = Path(sys.executable).with_name("rerank-utils")
        # the server's log goes to a file: a pipe nobody reads fills up (64 KB of access log) and blocks its event loop
        self.log = tempfile.NamedTemporaryFile("w+", prefix="service_faults_", suffix=".log", delete=False)
        self.proc = subprocess.Popen([str(cli), "serve", model_dir, "--port", str(port), "--device", "cpu", "--api-key", KEY, *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code in (200, 503):
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{Path(self.log.name).read_text()}")
            time.sleep(0.2)

    def metrics(self) -> dict[str, float]:
        from rerank_utils.serving.metrics import read_metrics

        return read_metrics(httpx.get(f"{self.url}/metrics", timeout=10).text)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def start_redis(port: int, folder: str) -> subprocess.Popen:
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    for _ in range(250):
        try:
            redis.Redis(port=port).ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


def hostile(server: Server) -> list[dict]:
    rows = []
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
        for name, route, kwargs in cases():
            if kwargs.pop("noauth", False):
                r = httpx.post(server.url + route, timeout=60, **kwargs)
            else:
                r = http.post(route, **kwargs)
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            error_type = body.get("error_type", "") if isinstance(body, dict) else ""
            rows.append({"case": name, "status": r.status_code, "error_type": error_type,
                         "error": (body.get("error", "") if isinstance(body, dict) else "")[:120]})
    return rows


def capacity(server: Server, bodies: list[dict], seconds: float = 8.0) -> float:
    """Pairs/s the service scores with 8 clients sending back to back (the cache off: distinct queries)."""
    stop, pairs = time.monotonic() + seconds, [0]
    lock = threading.Lock()

    def client(c: int):
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=120) as http:
            i = c
            while time.monotonic() < stop:
                body = bodies[i % len(bodies)]
                if http.post("/v2/rerank", json={**body, "query": f"{body['query']} #{c}-{i}"}).status_code == 200:
                    with lock:
                        pairs[0] += len(body["documents"])
                i += 8

    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, range(8)))
    return pairs[0] / (time.perf_counter() - t0)


def open_loop(server: Server, bodies: list[dict], rate_rps: float, seconds: float, deadline: float) -> dict:
    """Requests started at ``rate_rps`` for ``seconds``, each in its own thread (independent clients)."""
    results, lock = [], threading.Lock()

    def one(i: int):
        body = bodies[i % len(bodies)]
        t0 = time.perf_counter()
        try:
            r = httpx.post(f"{server.url}/v2/rerank", json={**body, "query": f"{body['query']} @{i}"}, headers=AUTH, timeout=deadline + 30)
            status = r.status_code
            retry_after = r.headers.get("Retry-After")
        except httpx.HTTPError as exc:
            status, retry_after = type(exc).__name__, None
        with lock:
            results.append((status, time.perf_counter() - t0, retry_after))

    threads, n = [], int(rate_rps * seconds)
    t_start = time.perf_counter()
    for i in range(n):
        delay = t_start + i / rate_rps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=one, args=(i,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(timeout=deadline + 60)
    statuses = [s for s, _, _ in results]
    lat = np.array([d for _, d, _ in results])
    ok = [d for s, d, _ in results if s == 200]
    return {"sent": n, "answered": len(results), "lost": n - len(results) + sum(not isinstance(s, int) for s in statuses),
            "2xx": sum(isinstance(s, int) and 200 <= s < 300 for s in statuses), "429": statuses.count(429),
            "other 4xx": sum(isinstance(s, int) and 400 <= s < 500 and s != 429 for s in statuses),
            "5xx": sum(isinstance(s, int) and s >= 500 for s in statuses),
            "retry_after_s": sorted({int(r) for _, _, r in results if r})[:5],
            "p50_ms": float(np.percentile(lat, 50) * 1000), "p95_ms": float(np.percentile(lat, 95) * 1000), "max_ms": float(lat.max() * 1000),
            "p50_ms_2xx": float(np.percentile(ok, 50) * 1000) if ok else None, "p95_ms_2xx": float(np.percentile(ok, 95) * 1000) if ok else None,
            "within_deadline": bool(lat.max() <= deadline)}


def steady(server: Server, bodies: list[dict], stop: threading.Event, out: list, clients: int = 4) -> list[threading.Thread]:
    """``clients`` clients sending ``bodies`` in turn until ``stop``; ``out`` gets (sent, answered, status or the
    exception's name) per request."""
    def client(c: int):
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
            i = c
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    status = http.post("/v2/rerank", json=bodies[i % len(bodies)]).status_code
                    out.append((t0, time.monotonic(), status))
                except httpx.HTTPError as exc:
                    out.append((t0, time.monotonic(), type(exc).__name__))
                    if isinstance(exc, httpx.ConnectError):
                        time.sleep(0.05)  # the port is closed: a client backs off
                i += clients

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    return threads


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=None, help="default: artifacts/cpu/models/reranker")
    ap.add_argument("--overload", type=float, default=4.0, help="offered load as a multiple of the measured capacity (default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the overload (default: %(default)s)")
    ap.add_argument("--deadline-s", type=float, default=10.0, help="the server's per-request deadline (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    from rerank_utils.data.saved_splits import prepare_splits
    from rerank_utils.models.loading import load_bi_encoder
    from rerank_utils.models.precision import machine_summary
    from rerank_utils.paths import artifacts_dir
    from rerank_utils.retrieval.dense import DenseRetriever
    from rerank_utils.serving.background import free_port
    from rerank_utils.serving.load_client import rerank_bodies

    model_dir = args.model_dir or str(artifacts_dir("cpu", "models", "reranker", create=False))
    test = prepare_splits("cpu", "faq-en", seed=42)["test"]
    bodies = rerank_bodies(test, DenseRetriever(test.corpus, load_bi_encoder("default")).search(test.queries, top_k=20), top_k=20)
    folder = tempfile.mkdtemp(prefix="service_faults_")
    redis_port = free_port()
    redis_proc = start_redis(redis_port, folder)
    result: dict = {"machine": machine_summary(), "model_dir": model_dir, "deadline_s": args.deadline_s, "at": time.strftime("%Y-%m-%d %H:%M")}
    server = Server(model_dir, free_port(), "--redis-url", f"redis://127.0.0.1:{redis_port}/0", "--deadline-s", str(args.deadline_s))
    try:
        # 1. hostile input
        result["hostile"] = hostile(server)
        print(f"hostile input: {len(result['hostile'])} cases, 5xx: {sum(r['status'] >= 500 for r in result['hostile'])}", flush=True)
        # 2. overload
        pairs_per_s = capacity(server, bodies)
        rate = args.overload * pairs_per_s / 20
        print(f"capacity {pairs_per_s:.0f} pairs/s = {pairs_per_s / 20:.1f} requests/s of 20 pairs; sending {rate:.1f}/s for {args.seconds:g} s", flush=True)
        health = server.metrics()
        result["overload"] = {"capacity_pairs_per_s": pairs_per_s, "offered_rps": rate, "queue_limit_pairs": health.get("rerank_queue_pairs_limit"),
                              **open_loop(server, bodies, rate, args.seconds, args.deadline_s)}
        result["overload"]["metrics_overloaded_total"] = server.metrics()["rerank_overloaded_total"]
        print("overload:", result["overload"], flush=True)
        # 3. Redis stopped and started again under a steady load
        time.sleep(1)
        stop, answers, health_seen = threading.Event(), [], {}
        threads = steady(server, bodies[:4], stop, answers)  # four questions over and over: the cache serves the repeats
        time.sleep(3)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        t_down = time.monotonic()
        hits_before = server.metrics()["rerank_cache_hits_total"]
        time.sleep(1)
        health_seen["while Redis is away"] = httpx.get(f"{server.url}/health").json()["status"]
        time.sleep(3)
        hits_down = server.metrics()["rerank_cache_hits_total"]
        redis_proc = start_redis(redis_port, folder)
        t_up = time.monotonic()
        time.sleep(1)
        health_seen["after it is back"] = httpx.get(f"{server.url}/health").json()["status"]
        time.sleep(4)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        m = server.metrics()
        statuses = [s for _, _, s in answers]
        result["redis_outage"] = {"requests": len(answers), "200": statuses.count(200), "not 200": len(statuses) - statuses.count(200),
                                  "during the outage": sum(t_down <= t < t_up for _, t, _ in answers), "health": health_seen,
                                  "cache hits before": hits_before, "cache hits while away": hits_down - hits_before,
                                  "cache hits after it is back": m["rerank_cache_hits_total"] - hits_down, "redis errors counted": m["rerank_cache_errors_total"]}
        print("redis outage:", result["redis_outage"], flush=True)
        # 4. SIGTERM during a load
        stop, answers = threading.Event(), []
        threads = steady(server, bodies, stop, answers, clients=8)
        time.sleep(3)
        t_term = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=60)
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        result["sigterm_trace"] = [(round(a - t_term, 3), round(b - t_term, 3), s) for a, b, s in answers if a - t_term < 1]
        in_flight = [s for sent, done, s in answers if sent < t_term < done]
        after = [s for sent, _, s in answers if sent >= t_term]
        outcomes = lambda xs: {str(k): sum(str(x) == str(k) for x in xs) for k in sorted({str(x) for x in xs})}  # noqa: E731
        result["sigterm"] = {"exit_status": code, "answered 200 before": sum(s == 200 for sent, done, s in answers if done < t_term),
                             "in flight at SIGTERM": outcomes(in_flight), "sent after SIGTERM": outcomes(after),
                             "5xx": sum(isinstance(s, int) and s >= 500 for _, _, s in answers)}
        print("sigterm:", result["sigterm"], flush=True)
    finally:
        if server.proc.poll() is None:
            server.stop()
        redis_proc.terminate()
        shutil.rmtree(folder, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    print("\n| case | status | error_type |\n|---|---|---|")
    for r in result["hostile"]:
        print(f"| {r['case']} | {r['status']} | {r['error_type']} |")
    o = result["overload"]
    print("\n| offered (x capacity) | sent | 2xx | 429 | other 4xx | 5xx | lost | p50 ms | p95 ms | max ms | deadline ms |\n|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {o['offered_rps']:.1f} req/s ({args.overload:g}x) | {o['sent']} | {o['2xx']} | {o['429']} | {o['other 4xx']} | {o['5xx']} | {o['lost']} | "
          f"{o['p50_ms']:.0f} | {o['p95_ms']:.0f} | {o['max_ms']:.0f} | {args.deadline_s * 1000:.0f} |")


if __name__ == "__main__":
    main()
