"""The rerank service's routes, shapes and refusals, through FastAPI's test client (in process)."""

from __future__ import annotations

import math

import pytest

from tests.extras import dev_extra

dev_extra("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from rerank_utils.serving.app import RerankService, create_app
from rerank_utils.serving.cache import ScoreCache  # noqa: E402
from rerank_utils.serving.metrics import read_metrics


class WordScorer:
    """Raw score = how many query words the text holds, minus 1 (so scores are logits around 0)."""

    def __init__(self):
        self.calls = 0

    def predict(self, pairs, batch_size=32, show_progress_bar=False):
        self.calls += 1
        return [float(sum(w in t.split() for w in q.split()) - 1) for q, t in pairs]


TEXTS = ["the roof leaks", "tax on the roof of the house", "nothing here"]


@pytest.fixture()
def client_and_service():
    service = RerankService(WordScorer(), model_name="words", max_documents=5, max_text_chars=40)
    return TestClient(create_app(service, max_body_bytes=5000)), service


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_tei_shape_sorted_with_sigmoid_or_raw(client_and_service):
    client, _ = client_and_service
    r = client.post("/rerank", json={"query": "roof tax", "texts": TEXTS})
    assert r.status_code == 200
    assert r.json() == [{"index": 1, "score": pytest.approx(sig(1))}, {"index": 0, "score": pytest.approx(sig(0))}, {"index": 2, "score": pytest.approx(sig(-1))}]
    r = client.post("/rerank", json={"query": "roof tax", "texts": TEXTS, "raw_scores": True, "return_text": True})
    assert r.json()[0] == {"index": 1, "score": 1.0, "text": TEXTS[1]}


def test_the_guides_body_is_accepted(client_and_service):
    client, _ = client_and_service
    r = client.post("/rerank", json={"query": "roof", "passages": TEXTS, "top_n": 2})
    assert r.status_code == 200 and [x["index"] for x in r.json()] == [0, 1]


def test_cohere_shapes(client_and_service):
    client, _ = client_and_service
    for version in ("v1", "v2"):
        r = client.post(f"/{version}/rerank", json={"query": "roof tax", "documents": TEXTS, "top_n": 2, "return_documents": True})
        body = r.json()
        assert r.status_code == 200 and body["meta"]["api_version"]["version"] == version[1]
        assert [x["index"] for x in body["results"]] == [1, 0]
        assert body["results"][0]["document"] == {"text": TEXTS[1]} and body["results"][0]["relevance_score"] == pytest.approx(sig(1))
    r = client.post("/v2/rerank", json={"query": "roof", "documents": [{"text": "the roof"}, "x"]})
    assert [x["index"] for x in r.json()["results"]] == [0, 1]


@pytest.mark.parametrize(
    "route, body, status, words",
    [
        ("/rerank", {"query": "", "texts": ["a"]}, 422, "query"),
        ("/v2/rerank", {"query": " \t ", "documents": ["a"]}, 422, "query: Value error, the query is blank"),
        ("/rerank", {"query": "q", "texts": []}, 422, "empty"),
        ("/rerank", {"query": "q"}, 422, "exactly one"),
        ("/rerank", {"query": "q", "texts": ["a"] * 6}, 413, "at most 5"),
        ("/rerank", {"query": "q", "texts": ["a" * 50], "truncate": False}, 413, "truncate is false"),
        ("/rerank", {"query": "q", "texts": "not a list"}, 422, "texts"),
        ("/v1/rerank", {"query": "q", "documents": []}, 422, "documents"),
        ("/v1/rerank", {"query": "q", "documents": [{"title": "no text"}]}, 422, "has no text"),
        ("/v2/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, 422, "top_n"),
    ],
)
def test_bad_input_is_refused_with_a_message(client_and_service, route, body, status, words):
    client, service = client_and_service
    r = client.post(route, json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"] and r.json()["error_type"]
    assert service.counters["errors"] >= 1


def test_malformed_json_and_huge_body(client_and_service):
    client, _ = client_and_service
    r = client.post("/rerank", content=b'{"query": "q", "texts": [', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error_type"] == "validation"
    assert r.json()["error"].startswith("the body is not valid JSON (") and "at character 25" in r.json()["error"]
    r = client.post("/rerank", json={"query": "q", "texts": ["a" * 30] * 200})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]


def test_long_texts_are_truncated_by_default(client_and_service):
    client, service = client_and_service
    r = client.post("/rerank", json={"query": "q", "texts": ["word " * 20], "return_text": True})
    assert r.status_code == 200 and len(r.json()[0]["text"]) == service.max_text_chars


def test_cache_health_metrics(client_and_service):
    client, service = client_and_service
    body = {"query": "roof tax", "texts": TEXTS}
    client.post("/rerank", json=body)
    calls = service.scorer.calls
    client.post("/rerank", json=body)
    assert service.scorer.calls == calls and service.cache.hits == 3  # the repeat was served from the cache
    assert client.get("/health").json() == {"status": "ok", "model": "words", "cache": "ScoreCache", "calibrated": False}
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    m = read_metrics(response.text)  # parsed by prometheus_client, as a Prometheus server would
    assert (m["rerank_requests_total"], m["rerank_cache_hits_total"], m["rerank_cache_misses_total"], m["rerank_pairs_scored_total"]) == (2, 3, 3, 3)
    assert m["rerank_errors_total"] == 0 and "rerank_batches_total" not in m  # a bare scorer: no micro-batcher counters
    assert client.get("/openapi.json").status_code == 200


def test_api_key_guards_only_the_rerank_routes():
    client = TestClient(create_app(RerankService(WordScorer()), api_key="s3cret"))
    body = {"query": "q", "texts": ["a"]}
    assert client.post("/rerank", json=body).status_code == 401
    assert client.post("/v1/rerank", json={"query": "q", "documents": ["a"]}, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/rerank", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/health").status_code == 200 and client.get("/metrics").status_code == 200


def test_score_cache_is_an_lru():
    c = ScoreCache(max_entries=2)
    c.put(("m", "q", "a"), 1.0)
    c.put(("m", "q", "b"), 2.0)
    assert c.get(("m", "q", "a")) == 1.0  # a is now the most recent
    c.put(("m", "q", "c"), 3.0)  # evicts b
    assert c.get(("m", "q", "b")) is None and c.get(("m", "q", "c")) == 3.0 and len(c) == 2
    with pytest.raises(ValueError, match="max_entries=-1"):
        ScoreCache(-1)


def test_raw_scorer_gives_logits_of_any_cross_encoder(tiny_bert_dir):
    import numpy as np
    import torch

    from rerank_utils.models.loading import load_cross_encoder
    from rerank_utils.serving.batching import RawScorer

    ce = load_cross_encoder(str(tiny_bert_dir))  # sigmoid activation by default
    pairs = [("roof", "the roof"), ("tax", "a house")]
    logits = RawScorer(ce).predict(pairs)
    assert np.allclose(logits, ce.predict(pairs, activation_fn=torch.nn.Identity()))
    assert np.allclose(ce.predict(pairs), 1 / (1 + np.exp(-np.asarray(logits))), atol=1e-6)


def test_service_setup_refusals(tmp_path, capsys):
    from rerank_utils.cli.main import main
    from rerank_utils.integrations.llamaindex import cross_encoder_reranker
    from rerank_utils.serving.app import load_service
    from rerank_utils.serving.batching import MicroBatcher

    with pytest.raises(ValueError, match="max_batch=0"):
        MicroBatcher(WordScorer(), max_batch=0)
    with pytest.raises(ValueError, match="deadline_seconds=0, queue_seconds=5.0: both must be > 0"):
        load_service(str(tmp_path), deadline_seconds=0)
    with pytest.raises(ValueError, match="max_body_bytes=0: must be >= 1"):
        TestClient(create_app(RerankService(WordScorer()), max_body_bytes=0)).get("/health")
    with pytest.raises(ValueError, match="backend='tensorrt': choose one of torch, onnx, openvino"):
        load_service(str(tmp_path), backend="tensorrt")
    with pytest.raises(ValueError, match="top_n=0, batch_size=32"):
        cross_encoder_reranker(WordScorer(), top_n=0)
    assert main(["serve", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_rerank_bodies_cycles_queries_best_first_and_refuses_an_empty_run():
    from rerank_utils.data.records import RetrievalDataset
    from rerank_utils.serving.load_client import rerank_bodies

    ds = RetrievalDataset({"a": "A", "b": "B", "c": "C"}, {"q1": "one", "q2": "two"}, {"q1": {"a": 1}, "q2": {"b": 1}})
    run = {"q1": {"a": 0.1, "b": 0.9, "c": 0.5}, "q2": {"c": 1.0}}
    bodies = rerank_bodies(ds, run, top_k=2, n=3)
    assert bodies == [{"query": "one", "documents": ["B", "C"]}, {"query": "two", "documents": ["C"]}, {"query": "one", "documents": ["B", "C"]}]
    with pytest.raises(ValueError, match="the run has no candidates for any query"):
        rerank_bodies(ds, {"q1": {}})


def test_backend_speeds_figure_and_its_refusal():
    from rerank_utils.tutorial.plots import backend_speeds

    fig = backend_speeds([{"backend": "PyTorch", "pairs_per_s": 10.0, "ndcg@10_change": 0.0},
                          {"backend": "ONNX int8", "pairs_per_s": 30.0, "ndcg@10_change": 0.003}])
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert " 3.00x, NDCG@10 +0.003" in labels and " 1.00x, NDCG@10 +0.000" in labels
    with pytest.raises(ValueError, match="backend_speeds: no rows"):
        backend_speeds([])
