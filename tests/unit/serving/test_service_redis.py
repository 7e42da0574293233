"""The Redis score cache against a real ``redis-server`` that the tests start on a free port (CI installs it
from Debian's packages with scripts/system-deps.sh). Locally the tests skip, saying why, only when the
binary is missing; under CI=true a missing binary is a failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tests.extras import dev_extra

redis = dev_extra("redis")
dev_extra("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from rerank_utils.serving.app import RerankService, create_app
from rerank_utils.serving.background import free_port  # noqa: E402
from rerank_utils.serving.cache import RedisScoreCache, ScoreCache, make_cache
from rerank_utils.serving.metrics import read_metrics

TEXTS = ["the roof leaks", "tax on the roof of the house", "nothing here"]


class WordScorer:
    def __init__(self):
        self.pairs = 0

    def predict(self, pairs, batch_size=32, show_progress_bar=False):
        self.pairs += len(pairs)
        return [float(sum(w in t.split() for w in q.split()) - 1) for q, t in pairs]


class Broken:
    def predict(self, pairs, batch_size=32, show_progress_bar=False):
        raise AssertionError("the model was called although every score is in Redis")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing under CI: scripts/system-deps.sh should have installed it")
        pytest.skip("redis-server is not installed (apt-get install redis-server, or bash scripts/system-deps.sh)")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("redis-server did not answer within 4 s")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def fresh(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    return redis_url


def test_round_trip_counts_hits_and_misses(fresh):
    cache = RedisScoreCache(fresh, ttl_seconds=60)
    keys = [("m", "q", "doc a"), ("m", "q", "doc b"), ("m", "q", "x" * 10_000)]
    assert cache.get_many(keys) == [None, None, None] and cache.misses == 3
    cache.put_many([(keys[0], 1.25), (keys[2], -3.5)])
    assert cache.get_many(keys) == [1.25, None, -3.5] and cache.hits == 2 and len(cache) == 2
    assert cache.get(("other-model", "q", "doc a")) is None  # the model is part of the key
    ttl = redis.Redis.from_url(fresh).ttl(cache._key(keys[0]))
    assert 0 < ttl <= 60


def test_two_services_share_scores_through_redis(fresh):
    """What Redis is for: a second worker (or replica) serves what the first one scored."""
    first = RerankService(WordScorer(), model_name="words", cache=RedisScoreCache(fresh))
    r1 = TestClient(create_app(first)).post("/v2/rerank", json={"query": "roof tax", "documents": TEXTS})
    assert r1.status_code == 200 and first.scorer.pairs == 3
    second = RerankService(Broken(), model_name="words", cache=RedisScoreCache(fresh))
    client = TestClient(create_app(second))
    r2 = client.post("/v2/rerank", json={"query": "roof tax", "documents": TEXTS})
    assert r2.status_code == 200 and r2.json()["results"] == r1.json()["results"]
    metrics = read_metrics(client.get("/metrics").text)
    assert metrics["rerank_cache_hits_total"] == 3 and metrics["rerank_cache_errors_total"] == 0
    assert client.get("/health").json()["cache"] == "RedisScoreCache"


def test_redis_url_from_the_environment_chooses_redis(fresh, monkeypatch):
    monkeypatch.setenv("REDIS_URL", fresh)
    assert isinstance(make_cache(10), RedisScoreCache)
    monkeypatch.delenv("REDIS_URL")
    assert isinstance(make_cache(10), ScoreCache)


def test_unreachable_redis_at_start_names_the_url():
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with pytest.raises(ConnectionError, match=f"Redis at {url} \\(REDIS_URL\\) did not answer"):
        RedisScoreCache(url, timeout_seconds=0.5)


def test_redis_going_away_mid_run_never_fails_a_request(redis_url, tmp_path):
    """A second server the test stops under a running service: requests still get scores, errors are counted."""
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--save", "", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        service = RerankService(WordScorer(), model_name="words", cache=RedisScoreCache(f"redis://127.0.0.1:{port}/0", timeout_seconds=0.5))
        client = TestClient(create_app(service))
        assert client.post("/rerank", json={"query": "roof", "texts": TEXTS}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    r = client.post("/rerank", json={"query": "roof", "texts": TEXTS, "raw_scores": True})
    assert r.status_code == 200 and [x["index"] for x in r.json()] == [0, 1, 2] and r.json()[0]["score"] == 0.0
    assert service.cache.errors >= 1 and read_metrics(client.get("/metrics").text)["rerank_cache_errors_total"] >= 1


def test_ttl_must_be_positive(fresh):
    with pytest.raises(ValueError, match="ttl_seconds=0"):
        RedisScoreCache(fresh, ttl_seconds=0)


def _start_redis(port: int, folder) -> subprocess.Popen:
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(250):
        try:
            redis.Redis(port=port).ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.02)
    proc.kill()
    pytest.fail(f"redis-server did not answer on port {port} within 5 s")


def test_redis_stopped_and_started_again_under_load(redis_url, tmp_path):
    """A real uvicorn server under a steady load while its Redis is stopped, then started again on the same port:
    every request is answered 200, /health says degraded while Redis is away and ok once it is back, and the
    cache is used again (hits grow) without restarting the service."""
    import threading

    from rerank_utils.serving.background import BackgroundServer

    httpx = dev_extra("httpx")
    port = free_port()
    proc = _start_redis(port, tmp_path)
    service = RerankService(WordScorer(), model_name="words", cache=RedisScoreCache(f"redis://127.0.0.1:{port}/0", timeout_seconds=0.5))
    statuses, stop = [], threading.Event()

    def load():
        with httpx.Client(timeout=10) as http:
            i = 0
            while not stop.is_set():
                r = http.post(f"{srv.url}/v2/rerank", json={"query": f"roof tax {i % 5}", "documents": TEXTS})
                statuses.append(r.status_code)
                i += 1

    def health():
        return httpx.get(f"{srv.url}/health").json()

    def wait_for(condition, what):
        deadline = time.monotonic() + 10
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"waited 10 s for {what}")
            time.sleep(0.05)

    try:
        with BackgroundServer(service) as srv:
            clients = [threading.Thread(target=load) for _ in range(4)]
            for c in clients:
                c.start()
            wait_for(lambda: service.cache.hits > 20, "cache hits before the outage")
            proc.terminate()
            proc.wait(timeout=10)
            wait_for(lambda: service.cache.errors > 0, "a Redis error counted")
            away = health()
            assert away["status"] == "degraded" and f"127.0.0.1:{port}" in away["problem"]
            served_while_away = len(statuses)
            wait_for(lambda: len(statuses) > served_while_away + 20, "requests served while Redis is away")
            proc = _start_redis(port, tmp_path)
            wait_for(lambda: health()["status"] == "ok", "/health ok again")
            hits_back = service.cache.hits
            wait_for(lambda: service.cache.hits > hits_back + 20, "cache hits after Redis came back")
            stop.set()
            for c in clients:
                c.join(timeout=10)
    finally:
        stop.set()
        proc.terminate()
        proc.wait(timeout=10)
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert read_metrics(service.metrics_text())["rerank_cache_errors_total"] == service.cache.errors > 0
