"""The rerank service as clients meet it: a real uvicorn server on 127.0.0.1 at a free port, over a saved
(tiny) bridge reranker; httpx, LlamaIndex's CohereRerank, and a bounded concurrent load."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from rerank_utils.bridge import build_bridge_reranker  # noqa: E402
from rerank_utils.service import MicroBatcher, create_app, load_service  # noqa: E402

TEXTS = ["the building permit law of the house", "water on the roof is a tax deduction cost", "the contract", "house " * 10]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_bert_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served") / "bridge"
    model = build_bridge_reranker(str(tiny_bert_dir), bias_mode="head", bias_start=-2.0, max_seq_length=64)
    model.save_pretrained(str(folder))
    service = load_service(str(folder), backend="torch", device="cpu", max_batch=64, max_wait_ms=20)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(service, api_key="k"), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", service, model
    srv.should_exit = True
    thread.join(timeout=10)
    service.scorer.close()
    assert not thread.is_alive()


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
    cohere = pytest.importorskip("llama_index.postprocessor.cohere_rerank")
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    url, _, model = server
    query = "building permit"
    nodes = [NodeWithScore(node=TextNode(id_=f"n{i}", text=t), score=0.0) for i, t in enumerate(TEXTS)]
    out = cohere.CohereRerank(base_url=url, api_key="k", top_n=2, max_retries=0).postprocess_nodes(nodes, query_bundle=QueryBundle(query))
    expected = np.argsort(-model.predict([(query, t) for t in TEXTS]), kind="stable")[:2]
    assert [n.node.node_id for n in out] == [f"n{i}" for i in expected]


def test_bounded_load_has_no_errors_and_shares_forward_passes(server):
    url, service, _ = server
    batches_before = service.scorer.batches

    def client(worker: int) -> list[int]:
        codes = []
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer k"}, timeout=30) as c:
            for i in range(25):
                r = c.post("/v2/rerank", json={"query": f"roof {worker} {i}", "documents": TEXTS[:2]})
                codes.append(r.status_code)
        return codes

    with ThreadPoolExecutor(16) as pool:
        codes = [c for codes in pool.map(client, range(16)) for c in codes]
    assert len(codes) == 400 and set(codes) == {200}
    batches = service.scorer.batches - batches_before
    assert batches < 400 and service.scorer.largest_batch > 2  # concurrent requests shared forward passes


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
