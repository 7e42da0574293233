"""The service's ``/metrics`` in the Prometheus text format, written and read with ``prometheus_client``.

:class:`ServiceCollector` turns a :class:`~rerank_utils.serving.app.RerankService`'s counters (requests, errors, pairs
scored, seconds, 429s, 504s and 503s), its cache's hits, misses and Redis errors, and its micro-batcher's forward passes and queue into metric
families at scrape time; :func:`metrics_text` renders them with ``generate_latest``. :func:`read_metrics` parses a
scrape back into ``{sample name: value}`` with ``prometheus_client``'s own parser, so notebook ``05_deployment`` and
the tests read what a Prometheus server would.
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families


class ServiceCollector:
    """A custom collector (prometheus_client's way to export values kept elsewhere) over one service."""

    def __init__(self, service: Any):
        self.service = service

    def collect(self) -> Iterator[Metric]:
        s, c = self.service, self.service.counters
        yield CounterMetricFamily("rerank_requests", "Rerank requests received.", value=c["requests"])
        yield CounterMetricFamily("rerank_errors", "Rerank requests refused or failed.", value=c["errors"])
        yield CounterMetricFamily("rerank_pairs_scored", "(query, document) pairs scored by the model.", value=c["pairs_scored"])
        yield CounterMetricFamily("rerank_request_seconds", "Seconds spent in rerank requests.", value=c["seconds"])
        yield CounterMetricFamily("rerank_overloaded", "Requests refused with 429: the queue of pairs was full.", value=c["overloaded"])
        yield CounterMetricFamily("rerank_timeouts", "Requests answered 504: not scored within their deadline.", value=c["timeouts"])
        yield CounterMetricFamily("rerank_scorer_failures", "Requests answered 503: the model raised.", value=c["scorer_failures"])
        yield CounterMetricFamily("rerank_cache_hits", "Scores served from the cache.", value=s.cache.hits)
        yield CounterMetricFamily("rerank_cache_misses", "Scores not in the cache.", value=s.cache.misses)
        if hasattr(s.cache, "errors"):  # Redis
            yield CounterMetricFamily("rerank_cache_errors", "Redis calls that failed (scored without the cache).", value=s.cache.errors)
        if hasattr(s.scorer, "batches"):  # a MicroBatcher
            yield CounterMetricFamily("rerank_batches", "Forward passes run by the micro-batcher.", value=s.scorer.batches)
            yield GaugeMetricFamily("rerank_batch_pairs_max", "Largest number of pairs in one forward pass.", value=s.scorer.largest_batch)
            yield GaugeMetricFamily("rerank_queue_pairs", "Pairs waiting for or in a forward pass now.", value=s.scorer.queued_pairs)
            if s.scorer.max_queue_pairs is not None:
                yield GaugeMetricFamily("rerank_queue_pairs_limit", "Most pairs allowed to wait; past it 429.", value=s.scorer.max_queue_pairs)


def metrics_text(service: Any) -> str:
    """``service``'s metrics in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(service))
    return generate_latest(registry).decode("utf-8")


def read_metrics(text: str) -> dict[str, float]:
    """``{sample name: value}`` of a Prometheus text scrape (a counter's sample is named ``<name>_total``)."""
    return {sample.name: sample.value for family in text_string_to_metric_families(text) for sample in family.samples}
