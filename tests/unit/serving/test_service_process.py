"""`rerank-utils serve` as its own process, as it is deployed: SIGTERM during a load lets the requests in flight
finish (200), refuses new connections, and exits 0."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.extras import dev_extra

httpx = dev_extra("httpx")
dev_extra("uvicorn")

from rerank_utils.models.bridge import build_bridge_reranker  # noqa: E402
from rerank_utils.serving.background import free_port
from rerank_utils.serving.metrics import read_metrics

AUTH = {"Authorization": "Bearer k"}


def test_sigterm_during_a_load_finishes_in_flight_requests_refuses_new_ones_and_exits_0(tiny_bert_dir, tmp_path):
    folder = tmp_path / "bridge"
    build_bridge_reranker(str(tiny_bert_dir), bias_mode="head", max_seq_length=64).save_pretrained(str(folder))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cli = Path(sys.executable).with_name("rerank-utils")
    # the micro-batcher waits 1.5 s for more requests: the six below are in flight when SIGTERM arrives
    log = tmp_path / "serve.log"  # a file, not a pipe: an unread pipe fills up with the access log and blocks the server
    proc = subprocess.Popen([str(cli), "serve", str(folder), "--port", str(port), "--device", "cpu", "--api-key", "k", "--max-wait-ms", "1500"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start (exit {proc.poll()}):\n{log.read_text()}")
            time.sleep(0.1)
        with ThreadPoolExecutor(6) as pool:
            body = {"query": "roof tax", "documents": ["the roof", "a tax on houses"]}
            in_flight = [pool.submit(httpx.post, f"{url}/v2/rerank", json=body, headers=AUTH, timeout=30) for _ in range(6)]
            while read_metrics(httpx.get(f"{url}/metrics").text)["rerank_requests_total"] < 6:  # all six are being handled
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            statuses = [f.result().status_code for f in in_flight]
        assert statuses == [200] * 6
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"{url}/v2/rerank", json=body, headers=AUTH, timeout=5)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert "Shutting down" in output and f"serving {folder}" in output
