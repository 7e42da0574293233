"""The rerank service as clients meet it: a real uvicorn server on 127.0.0.1 at a free port, over a saved
(tiny) bridge reranker; httpx, LlamaIndex's CohereRerank, and a bounded concurrent load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.extras import dev_extra

dev_extra("fastapi")
uvicorn = dev_extra("uvicorn")
httpx = dev_extra("httpx")

from rerank_utils.models.bridge import build_bridge_reranker  # noqa: E402
from rerank_utils.serving.app import load_service
from rerank_utils.serving.background import BackgroundServer
from rerank_utils.serving.batching import MicroBatcher
from rerank_utils.serving.load_client import load_test  # noqa: E402

TEXTS = ["the building permit law of the house", "water on the roof is a tax deduction cost", "the contract", "house " * 10]


@pytest.fixture(scope="module")
def server(tiny_bert_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served") / "bridge"
    model = build_bridge_reranker(str(tiny_bert_dir), bias_mode="head", bias_start=-2.0, max_seq_length=64)
    model.save_pretrained(str(folder))
    service = load_service(str(folder), backend="torch", device="cpu", max_batch=64, max_wait_ms=20)
    srv = BackgroundServer(service, api_key="k")
    assert srv.running and httpx.get(f"{srv.url}/health").status_code == 200
    yield srv.url, service, model
    srv.stop()
    assert not srv.running
    with pytest.raises(httpx.ConnectError):  # stopped means the port is closed
        httpx.get(f"{srv.url}/health", timeout=2)


def test_rerank_over_http_matches_the_model(server):
    url, _, model = server
    query = "roof tax"
    r = httpx.post(f"{url}/rerank", json={"query": query, "texts": TEXTS, "raw_scores": True}, headers={"Authorization": "Bearer k"})
    assert r.status_code == 200
    expected = model.predict([(query, t) for t in TEXTS])
    assert [x["index"] for x in r.json()] == list(np.argsort(-expected, kind="stable"))
    assert np.allclose(sorted(expected, reverse=True), [x["score"] for x in r.json()], atol=1e-4)
    assert httpx.post(f"{url}/rerank", json={"query": query, "texts": TEXTS}).status_code == 401
    assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_llamaindex_cohere_client_works_unchanged(server):
    cohere = dev_extra("llama_index.postprocessor.cohere_rerank")
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    url, _, model = server
    query = "building permit"
    nodes = [NodeWithScore(node=TextNode(id_=f"n{i}", text=t), score=0.0) for i, t in enumerate(TEXTS)]
    out = cohere.CohereRerank(base_url=url, api_key="k", top_n=2, max_retries=0).postprocess_nodes(nodes, query_bundle=QueryBundle(query))
    expected = np.argsort(-model.predict([(query, t) for t in TEXTS]), kind="stable")[:2]
    assert [n.node.node_id for n in out] == [f"n{i}" for i in expected]


def test_bounded_load_has_no_errors_and_shares_forward_passes(server, tmp_path):
    """400 requests from 16 concurrent clients (load_test stops by itself when the bodies run out); the
    measured throughput and p50/p95 are written as benchmarks/service_load.py writes them."""
    url, service, _ = server
    batches_before = service.scorer.batches
    bodies = [{"query": f"roof {i}", "documents": TEXTS[:2]} for i in range(400)]
    result = load_test(url, bodies, concurrency=16, api_key="k")
    (tmp_path / "service_load.json").write_text(json.dumps(result))
    assert result["requests"] == 400 and result["errors"] == 0 and result["statuses"] == {"200": 400}
    assert result["throughput_rps"] > 0 and 0 < result["p50_ms"] <= result["p95_ms"] <= result["max_ms"]
    batches = service.scorer.batches - batches_before
    assert batches < 400 and service.scorer.largest_batch > 2  # concurrent requests shared forward passes


def test_load_test_counts_refusals_as_errors(server):
    url, _, _ = server
    result = load_test(url, [{"query": "roof", "documents": TEXTS}] * 6, concurrency=3, api_key="wrong")
    assert result["requests"] == 6 and result["errors"] == 6 and result["statuses"] == {"401": 6}
    with pytest.raises(ValueError, match="concurrency=0"):
        load_test(url, [{}], concurrency=0)


def test_background_server_on_a_taken_port_says_so(server, tiny_bert_dir):
    url, service, _ = server
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(RuntimeError, match=f"did not start on http://127.0.0.1:{port}"):
        BackgroundServer(service, port=port)


def test_micro_batcher_passes_errors_to_every_waiting_caller():
    class Broken:
        def predict(self, pairs, batch_size=32, show_progress_bar=False):
            raise RuntimeError("model failed")

    mb = MicroBatcher(Broken(), max_wait_ms=1)
    with pytest.raises(RuntimeError, match="model failed"):
        mb.predict([("q", "d")])
    assert mb.predict([]) == []
    mb.close()
    with pytest.raises(RuntimeError, match="closed"):
        mb.predict([("q", "d")])


def test_micro_batcher_never_exceeds_max_batch_but_runs_a_large_request_alone():
    import threading

    class Recorder:
        def __init__(self):
            self.sizes = []

        def predict(self, pairs, batch_size=32, show_progress_bar=False):
            self.sizes.append(len(pairs))
            return [float(len(d)) for _, d in pairs]

    rec = Recorder()
    mb = MicroBatcher(rec, max_batch=10, max_wait_ms=50)
    requests = [[("q", "d" * (i + 1))] * 4 for i in range(12)] + [[("q", "long")] * 25]
    results = [None] * len(requests)

    def call(i):
        results[i] = mb.predict(requests[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    mb.close()
    assert all(r == [float(len(d)) for _, d in req] for r, req in zip(results, requests))  # each caller got its own scores
    assert sum(rec.sizes) == 12 * 4 + 25 and 25 in rec.sizes  # the 25-pair request ran alone
    assert all(s <= 10 and s % 4 == 0 for s in rec.sizes if s != 25)  # whole requests, never 3 of them (12 > 10)
