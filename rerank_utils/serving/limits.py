""":class:`BodyLimit`: the request body limit that holds for every transfer, and the clock each request's deadline
counts from.

Hand-written as a small pure-ASGI middleware because neither Starlette nor uvicorn limits a request body:
uvicorn has no such option, and a check of ``Content-Length`` (what the service did before) misses a body sent
with ``Transfer-Encoding: chunked``, which carries no length. This one counts the bytes actually received,
whatever the transfer, and answers 413 as soon as they pass the limit, without reading the rest; a body within
it is handed on unchanged.
"""

from __future__ import annotations

import json
import time
from typing import Any, Awaitable, Callable

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class BodyLimit:
    """Wrap an ASGI ``app``: HTTP bodies over ``max_bytes`` get ``413 {"error", "error_type":
    "payload_too_large"}`` and ``on_refusal()`` is called (the service counts it). Every HTTP request's arrival
    time (``time.perf_counter()``) is put in ``scope["state"]["arrived"]`` (``request.state.arrived`` in a route)."""

    def __init__(self, app: ASGIApp, max_bytes: int, on_refusal: Callable[[], Any] = lambda: None):
        if max_bytes < 1:
            raise ValueError(f"max_body_bytes={max_bytes}: must be >= 1")
        self.app, self.max_bytes, self.on_refusal = app, max_bytes, on_refusal

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["arrived"] = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send, f"body of {length} bytes is over the limit of {self.max_bytes}")
            return
        messages, size = [], 0
        while True:  # read the whole body here (the routes read it whole anyway), counting what arrives
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send, f"body of more than {self.max_bytes} bytes (chunked or without a Content-Length) is over the limit")
                return
            messages.append(message)
            if not message.get("more_body", False):
                break

        async def replay() -> dict:
            if messages:
                return messages.pop(0)
            return await receive()  # after the body: wait for the disconnect, as the app expects

        await self.app(scope, replay, send)

    async def _refuse(self, send, message: str) -> None:
        self.on_refusal()
        body = json.dumps({"error": message, "error_type": "payload_too_large"}).encode("utf-8")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
