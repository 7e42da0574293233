"""Score caches keyed by ``(model, query, document)``: :class:`ScoreCache` (an in-process LRU) and
:class:`RedisScoreCache` (shared by workers and replicas; a Redis outage is counted and scoring goes on without
it). :func:`make_cache` picks one from ``REDIS_URL``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
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
            import redis  # local: only with REDIS_URL
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

    def check(self) -> bool:
        """Whether Redis answers a PING now (``/health`` reports ``degraded`` while it does not). The client
        reconnects by itself once the server is back, so the cache is used again without a restart."""
        try:
            return bool(self.client.ping())
        except self._redis_error:
            return False

    def __len__(self) -> int:
        """Keys under this cache's prefix (SCAN: for tests and notebooks, not the hot path)."""
        return sum(1 for _ in self.client.scan_iter(match=self.prefix + "*", count=1000))


def make_cache(cache_size: int = 100_000, redis_url: str | None = None) -> "ScoreCache | RedisScoreCache":
    """Redis when ``redis_url`` (default: the ``REDIS_URL`` environment variable) is set, else the in-process
    LRU of ``cache_size`` entries (0 disables it)."""
    redis_url = redis_url if redis_url is not None else os.environ.get("REDIS_URL") or None
    return RedisScoreCache(redis_url) if redis_url else ScoreCache(cache_size)
