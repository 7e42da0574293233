""":class:`BackgroundServer`: a service served by uvicorn in a background thread (notebooks, tests), stopped the way
Ctrl-C stops it; :func:`free_port` finds a port.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from rerank_utils.serving.app import RerankService, create_app
from rerank_utils.serving.batching import MicroBatcher


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class BackgroundServer:
    """A :class:`~rerank_utils.serving.app.RerankService` served by uvicorn in a background thread of this process, for notebooks and
    tests: ``with BackgroundServer(service) as srv: httpx.post(srv.url + "/rerank", ...)``. ``stop()`` (or
    leaving the ``with``) shuts uvicorn down the way Ctrl-C does, waits for it and closes the micro-batcher."""
    def __init__(self, service: RerankService, host: str = "127.0.0.1", port: int | None = None, api_key: str | None = None,
                 start_timeout: float = 30.0):
        self.service, self.host, self.port = service, host, port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(create_app(service, api_key=api_key), host=host, port=self.port, log_level="warning"))
        self._server.install_signal_handlers = lambda: None  # not the main thread (uvicorn < 0.29 asks)
        self.exit_code: int | None = None

        def run() -> None:
            try:
                self._server.run()
            except SystemExit as exc:  # uvicorn exits this way when it cannot bind the port
                self.exit_code = exc.code if isinstance(exc.code, int) else 1

        self._thread = threading.Thread(target=run, name="rerank-service", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + start_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the service did not start on {self.url} (uvicorn exit code {self.exit_code}; is the port taken?)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the service did not start on {self.url} within {start_timeout} s")
            time.sleep(0.02)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=timeout)
        if isinstance(self.service.scorer, MicroBatcher):
            self.service.scorer.close()
        if self._thread.is_alive():
            raise RuntimeError(f"the service on {self.url} did not stop within {timeout} s")

    def __enter__(self) -> "BackgroundServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
