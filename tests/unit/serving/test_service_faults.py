"""Limits, overload and faults against a real uvicorn server (BackgroundServer, 127.0.0.1, a free port) over a
scorer the tests control: chunked bodies over the limit, bodies FastAPI cannot decode, a full queue (429 with
Retry-After), a stuck forward pass (504, /health busy), a model that raises (503), and a bounded overload where
every request gets a 2xx or a 429 within its deadline. Each checks the status, the body's error_type and the
counters in /metrics."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.extras import dev_extra

dev_extra("fastapi")
httpx = dev_extra("httpx")

from rerank_utils.serving.app import RerankService  # noqa: E402
from rerank_utils.serving.background import BackgroundServer
from rerank_utils.serving.batching import MicroBatcher
from rerank_utils.serving.errors import DeadlineExceeded, Overloaded
from rerank_utils.serving.metrics import read_metrics

AUTH = {"Authorization": "Bearer k"}


class GatedScorer:
    """Raw score = words shared with the query; each pair costs ``seconds_per_pair``; while ``gate`` is clear a
    forward pass waits (a stuck model); ``fail`` makes it raise."""

    def __init__(self, seconds_per_pair: float = 0.0):
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False
        self.seconds_per_pair = seconds_per_pair

    def predict(self, pairs, batch_size=32, show_progress_bar=False):
        self.gate.wait(timeout=60)
        if self.fail:
            raise RuntimeError("CUDA error: device-side assert triggered")
        time.sleep(self.seconds_per_pair * len(pairs))
        return [float(len(set(q.split()) & set(t.split()))) for q, t in pairs]


def served(scorer, max_queue_pairs=None, deadline=30.0, max_wait_ms=1.0, **kwargs):
    service = RerankService(MicroBatcher(scorer, max_batch=64, max_wait_ms=max_wait_ms, max_queue_pairs=max_queue_pairs),
                            model_name="gated", deadline_seconds=deadline, **kwargs)
    return service, BackgroundServer(service, api_key="k")


def metrics(url):
    return read_metrics(httpx.get(f"{url}/metrics").text)


def test_a_chunked_body_over_the_limit_is_refused_and_one_within_it_is_scored():
    service, srv = served(GatedScorer())
    with srv:
        def chunks(n_docs):
            yield b'{"query": "roof", "texts": ['
            for i in range(n_docs):
                yield (b", " if i else b"") + b'"the roof of the house number %d"' % i
            yield b"]}"

        headers = {**AUTH, "content-type": "application/json"}
        big = httpx.post(f"{srv.url}/rerank", content=chunks(100_000), headers=headers, timeout=30)  # ~3.4 MB, no Content-Length
        assert big.status_code == 413 and big.json()["error_type"] == "payload_too_large"
        assert "chunked or without a Content-Length" in big.json()["error"]
        small = httpx.post(f"{srv.url}/rerank", content=chunks(3), headers=headers)
        assert small.status_code == 200 and len(small.json()) == 3
        sized = httpx.post(f"{srv.url}/rerank", json={"query": "q", "texts": ["x" * 100] * 30_000}, headers=AUTH)
        assert sized.status_code == 413 and "over the limit of 2000000" in sized.json()["error"]
        assert service.counters["errors"] == 2 and service.scorer.pairs == 3  # nothing over the limit reached the model


@pytest.mark.parametrize("body, words", [
    (b'{"query": "caf\xe9", "texts": ["a"]}', "not UTF-8 text (byte 0xe9 at position 14)"),
    (b'{"query": "q", "texts": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
])
def test_bodies_fastapi_cannot_decode_get_the_services_shape(body, words):
    service, srv = served(GatedScorer())
    with srv:
        r = httpx.post(f"{srv.url}/rerank", content=body, headers={**AUTH, "content-type": "application/json"})
        assert r.status_code == 400 and r.json() == {"error": r.json()["error"], "error_type": "invalid_body"} and words in r.json()["error"]
        nowhere = httpx.post(f"{srv.url}/v3/rerank", json={}, headers=AUTH)
        assert nowhere.status_code == 404 and nowhere.json()["error_type"] == "not_found" and "POST /rerank" in nowhere.json()["error"]
        wrong_method = httpx.get(f"{srv.url}/rerank")
        assert wrong_method.status_code == 405 and wrong_method.json()["error_type"] == "method_not_allowed"
        assert metrics(srv.url)["rerank_errors_total"] == 3


def test_a_full_queue_answers_429_with_retry_after_and_health_says_busy():
    scorer = GatedScorer()
    service, srv = served(scorer, max_queue_pairs=10)
    with srv, ThreadPoolExecutor(4) as pool:
        scorer.gate.clear()  # the model hangs: requests pile up in the queue
        body = {"query": "roof", "texts": ["roof a", "roof b", "c", "d"]}
        waiting = [pool.submit(httpx.post, f"{srv.url}/rerank", json={**body, "query": f"roof {i}"}, headers=AUTH, timeout=30) for i in range(2)]
        deadline = time.monotonic() + 10
        while service.scorer.queued_pairs < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert service.scorer.queued_pairs == 8
        refused = httpx.post(f"{srv.url}/rerank", json={**body, "query": "roof 3"}, headers=AUTH)
        assert refused.status_code == 429 and refused.json()["error_type"] == "overloaded"
        assert int(refused.headers["Retry-After"]) >= 1 and "at most 10" in refused.json()["error"]
        health = httpx.get(f"{srv.url}/health")
        assert health.status_code == 503 and health.json()["status"] == "busy" and health.json()["queued_pairs"] == 8
        m = metrics(srv.url)
        assert m["rerank_overloaded_total"] == 1 and m["rerank_queue_pairs"] == 8 and m["rerank_queue_pairs_limit"] == 10
        scorer.gate.set()
        assert [f.result().status_code for f in waiting] == [200, 200]  # nothing queued was lost
        assert httpx.get(f"{srv.url}/health").json()["status"] == "ok" and service.scorer.queued_pairs == 0


def test_a_stuck_forward_pass_answers_504_within_the_deadline_and_drops_the_queued_work():
    scorer = GatedScorer()
    service, srv = served(scorer, deadline=0.5)
    with srv, ThreadPoolExecutor(2) as pool:
        scorer.gate.clear()
        t0 = time.perf_counter()
        stuck = pool.submit(httpx.post, f"{srv.url}/v2/rerank", json={"query": "roof", "documents": ["roof", "x"]}, headers=AUTH)
        while service.scorer.forward_seconds() == 0:  # the first request is in the (stuck) forward pass
            time.sleep(0.005)
        behind = pool.submit(httpx.post, f"{srv.url}/v2/rerank", json={"query": "tax", "documents": ["tax"]}, headers=AUTH)
        for r in (stuck.result(timeout=10), behind.result(timeout=10)):
            assert r.status_code == 504 and r.json()["error_type"] == "timeout" and "deadline of 0.5 s" in r.json()["error"]
        assert time.perf_counter() - t0 < 3
        time.sleep(0.6)
        health = httpx.get(f"{srv.url}/health")
        assert health.status_code == 503 and "forward pass has run for" in health.json()["problem"]
        assert metrics(srv.url)["rerank_timeouts_total"] == 2
        scorer.gate.set()
        time.sleep(0.2)
        assert service.scorer.queued_pairs == 0  # the stuck pass ended; the request behind it was dropped, not scored late
        assert service.scorer.pairs <= 2
        ok = httpx.post(f"{srv.url}/v2/rerank", json={"query": "roof", "documents": ["roof"]}, headers=AUTH)
        assert ok.status_code == 200


def test_a_model_that_raises_gets_503_counted_and_the_service_lives_on():
    scorer = GatedScorer()
    service, srv = served(scorer)
    with srv:
        scorer.fail = True
        r = httpx.post(f"{srv.url}/rerank", json={"query": "roof", "texts": ["roof"]}, headers=AUTH)
        assert r.status_code == 503 and r.json()["error_type"] == "scorer_failed" and "RuntimeError: CUDA error" in r.json()["error"]
        assert metrics(srv.url)["rerank_scorer_failures_total"] == 1
        scorer.fail = False
        assert httpx.post(f"{srv.url}/rerank", json={"query": "roof", "texts": ["roof"]}, headers=AUTH).status_code == 200


def test_a_bounded_overload_gets_2xx_or_429_within_the_deadline_and_nothing_is_lost():
    """A model of 500 pairs/s, a queue of 0.4 s of its work, 24 clients sending 20 pairs each as fast as they can
    for 3 s (about 4x what it can score): every request is answered 200 or 429 within the 5 s deadline."""
    scorer = GatedScorer(seconds_per_pair=0.002)
    service, srv = served(scorer, max_queue_pairs=200, deadline=5.0, max_wait_ms=2.0, cache=_NoCache())
    statuses, latencies, lock = [], [], threading.Lock()
    stop_at = time.monotonic() + 3

    def client(c: int):
        with httpx.Client(base_url=srv.url, headers=AUTH, timeout=30) as http:
            i = 0
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                r = http.post("/v2/rerank", json={"query": f"roof {c} {i}", "documents": [f"roof {j}" for j in range(20)]})
                with lock:
                    statuses.append(r.status_code)
                    latencies.append(time.perf_counter() - t0)
                i += 1

    with srv, ThreadPoolExecutor(24) as pool:
        list(pool.map(client, range(24)))
        m = metrics(srv.url)
    assert set(statuses) <= {200, 429} and statuses.count(200) > 0 and statuses.count(429) > 0, sorted(set(statuses))
    assert max(latencies) < 5.0
    assert m["rerank_requests_total"] == len(statuses) and m["rerank_overloaded_total"] == statuses.count(429)
    assert m["rerank_pairs_scored_total"] == 20 * statuses.count(200)


class _NoCache:
    """Every pair is scored (the overload test sends distinct queries anyway)."""
    hits = misses = 0

    def get_many(self, keys):
        return [None] * len(keys)

    def put_many(self, items):
        pass


def test_micro_batcher_bound_and_deadline_without_a_server():
    scorer = GatedScorer()
    mb = MicroBatcher(scorer, max_batch=8, max_wait_ms=0, max_queue_pairs=4)
    scorer.gate.clear()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(mb.predict, [("q", "a")] * 3)
        while mb.queued_pairs < 3:
            time.sleep(0.005)
        with pytest.raises(Overloaded) as exc:
            mb.predict([("q", "b")] * 2)
        assert exc.value.retry_after == 1 and exc.value.limit == 4 and mb.rejected == 1
        with pytest.raises(DeadlineExceeded, match="deadline of 0.05 s"):
            mb.predict([("q", "c")], timeout=0.05)  # fits (3 + 1 <= 4) but the model is stuck
        scorer.gate.set()
        assert first.result(timeout=10) == [0.0, 0.0, 0.0]
    assert mb.predict([("q", "q")] * 6) == [1.0] * 6  # larger than the bound, but the queue is empty: it runs, alone
    assert mb.timeouts == 1 and mb.queued_pairs == 0 and mb.pairs_per_s > 0
    mb.close()
    with pytest.raises(ValueError, match="max_queue_pairs=0"):
        MicroBatcher(scorer, max_queue_pairs=0)
