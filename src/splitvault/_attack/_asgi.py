"""The real HTTP app, in this process: a device's ``HttpShareService`` talking to the
Starlette app around a ``ShareServer`` without a socket.

The leakage attack needs this: the HTTP layer is where log lines and error bodies are
written, so flows must pass through it to be searched. Every request and response body
is kept (``bodies``): that is what a network attacker without TLS would see.
"""

from __future__ import annotations

import contextlib
from typing import Any

import anyio.from_thread
import httpx

from .._protocol import ShareService
from ..server import ShareServer

__all__ = ["AsgiBridge", "http_service"]


class AsgiBridge(httpx.BaseTransport):
    """A synchronous httpx transport that runs an ASGI app on a private event loop."""

    def __init__(self, app: Any) -> None:
        self._stack = contextlib.ExitStack()
        self._portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._inner = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.bodies.append(body)

        async def send() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            forwarded = httpx.Request(request.method, request.url, headers=request.headers,
                                      content=body)
            response = await self._inner.handle_async_request(forwarded)
            content = await response.aread()
            return response.status_code, list(response.headers.raw), content

        status, headers, content = self._portal.call(send)
        self.bodies.append(content)
        return httpx.Response(status, headers=headers, content=content)

    def close(self) -> None:
        self._stack.close()


def http_service(server: ShareServer) -> tuple[ShareService, AsgiBridge]:
    """An ``HttpShareService`` reaching ``server`` through its real HTTP app."""
    from ..hazmat import HttpShareService, create_app

    bridge = AsgiBridge(create_app(server, limiter=None))
    service = HttpShareService("http://127.0.0.1", transport=bridge, connect_retries=0)
    return service, bridge
