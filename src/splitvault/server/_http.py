"""The share server over HTTP: a Starlette app around one :class:`ShareServer`.

Every route and status is in :mod:`splitvault._http_api`. What this module adds:

- Bodies are read with a hard size limit, checked on ``Content-Length`` first and
  again while counting streamed bytes, so an oversized body is refused before it is
  read; then decoded strictly by :mod:`splitvault._wire`. A rejected body never
  reaches the ``ShareServer``, so it changes nothing.
- ``ShareServer`` is synchronous (SQLite): its calls run in worker threads so the
  event loop keeps accepting requests. A call that has started runs to completion even
  if the client goes away: anyio does not abandon a running thread, and SQLite
  transactions commit whole or not at all.
- Errors are answered from their ``VaultError.code``; an unexpected exception is a
  500 with a fixed message, never its text.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.types import ASGIApp

from .._errors import MalformedRequest, VaultError, WrongPin
from .._http_api import ROUTES, Route, error_body, status_of
from .._realm_api import GATEWAY_ROUTES, REALM_ROUTES
from .._wire import MAX_BODY, Empty, dumps, loads
from ._access import CONTEXT_KEY, AccessMiddleware
from ._openapi import openapi_document
from ._ratelimit import RateLimiter
from ._server import ShareServer

__all__ = ["ROLES", "HttpApp", "Role", "create_app", "routes_of"]

Role = Literal["all", "realm", "gateway"]
ROLES: tuple[Role, ...] = ("all", "realm", "gateway")

_JSON = "application/json"


class _Rejected(MalformedRequest):
    """A body refused before decoding: too large (413) or not JSON (415)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class _InFlight:
    """Counts ShareServer calls running in worker threads, so shutdown can wait for
    them before the database is closed under their feet."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self) -> None:
        with self._idle:
            self._count += 1

    def __exit__(self, *exc: object) -> None:
        with self._idle:
            self._count -= 1
            if self._count == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)


class HttpApp:
    """The ASGI app (call it) and the hooks the ``serve`` command needs."""

    def __init__(self, server: ShareServer, *, limiter: RateLimiter | None,
                 max_body: int = MAX_BODY, role: Role = "all") -> None:
        self.server = server
        self.max_body = max_body
        self.in_flight = _InFlight()
        routes = [StarletteRoute(r.path, self._endpoint(r),
                                 methods=["GET"] if r.request is None else ["POST"])
                  for r in routes_of(role)]
        routes += [
            StarletteRoute("/healthz", _healthz, methods=["GET"]),
            StarletteRoute("/readyz", self._readyz, methods=["GET"]),
            StarletteRoute("/openapi.json", self._openapi, methods=["GET"]),
        ]
        self._document = openapi_document(
            max_body, routes_of(role),
            {"all": "splitvault share server", "realm": "splitvault realm",
             "gateway": "splitvault gateway"}[role])
        starlette = Starlette(routes=routes, exception_handlers={
            HTTPException: _http_exception, Exception: _internal_error})
        self.asgi: ASGIApp = AccessMiddleware(starlette, limiter=limiter)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.asgi(scope, receive, send)

    def _endpoint(self, route: Route) -> Any:
        async def endpoint(request: Request) -> Response:
            context = request.scope[CONTEXT_KEY]
            try:
                message = None
                if route.request is not None:
                    message = loads(route.request, await self._read_body(request),
                                    limit=self.max_body)
                    context["card_id"] = getattr(message, "card_id", None)
                client = request.client.host if request.client is not None else None
                result = await anyio.to_thread.run_sync(self._call, route.method, message,
                                                        client)
            except VaultError as exc:
                return _error(context, exc)
            except ClientDisconnect:
                context["error"] = "client_disconnected"
                return Response(status_code=400)  # nobody is listening any more
            if result is None:
                result = Empty()
            return Response(dumps(route.reply, result), media_type=_JSON)

        endpoint.__name__ = route.method
        return endpoint

    def _call(self, method: str, message: object, client: str | None = None) -> object:
        with self.in_flight:
            if message is None:
                return getattr(self.server, method)()
            if method == "enroll_begin":  # capped per address, in the store
                return self.server.enroll_begin(message, origin=client)  # type: ignore[arg-type]
            return getattr(self.server, method)(message)

    async def _read_body(self, request: Request) -> bytes:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != _JSON:
            raise _Rejected(415, "content type must be application/json")
        declared = request.headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                raise MalformedRequest("malformed Content-Length")
            if int(declared) > self.max_body:
                raise _Rejected(413, f"body larger than {self.max_body} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:  # chunked, or a lying Content-Length
                raise _Rejected(413, f"body larger than {self.max_body} bytes")
        return bytes(body)

    async def _readyz(self, request: Request) -> Response:
        try:
            await anyio.to_thread.run_sync(self._ping)
        except Exception:
            request.scope[CONTEXT_KEY]["error"] = "not_ready"
            return Response(error_body("not_ready", "database unreachable"),
                            status_code=503, media_type=_JSON)
        return JSONResponse({"status": "ready"})

    def _ping(self) -> None:
        if not self.server.ready():
            raise RuntimeError("database unreachable")

    async def _openapi(self, request: Request) -> Response:
        return JSONResponse(self._document)


def create_app(server: ShareServer, *, limiter: RateLimiter | None = None,
               max_body: int = MAX_BODY, role: Role = "all") -> HttpApp:
    """The HTTP app for ``server`` in ``role``: ``all`` (the single server: one realm and
    the gateway, 2-of-2), ``realm`` or ``gateway`` of a t-of-n deployment. ``limiter``
    None turns rate limiting off."""
    return HttpApp(server, limiter=limiter, max_body=max_body, role=role)


def routes_of(role: Role) -> tuple[Route, ...]:
    """The routes a server in ``role`` answers; any other path is a 404."""
    if role == "realm":
        return REALM_ROUTES
    if role == "gateway":
        return GATEWAY_ROUTES
    return ROUTES


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _error(context: dict[str, Any], exc: VaultError) -> Response:
    code = exc.code
    status = getattr(exc, "status", None) or status_of(code)
    if status >= 500 and code != "acquirer_unavailable":
        # An error we did not plan to send (a ConfigurationError from a wrong key file,
        # say): its message is for the operator's eyes, not the client's.
        code, message = "internal_error", "internal server error"
    else:
        message = str(exc)
    context["error"] = code
    attempts = exc.attempts_left if isinstance(exc, WrongPin) else None
    headers = {"www-authenticate": 'PIN realm="splitvault"'} if status == 401 else None
    return Response(error_body(code, message, attempts), status_code=status,
                    media_type=_JSON, headers=headers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "malformed_request")
    headers = getattr(exc, "headers", None)
    request.scope.get(CONTEXT_KEY, {})["error"] = code
    return Response(error_body(code, {404: "no such route", 405: "method not allowed"}.get(
        status, "bad request")), status_code=status, media_type=_JSON, headers=headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after answering; AccessMiddleware logs the type, not the text.
    return Response(error_body("internal_error", "internal server error"), status_code=500,
                    media_type=_JSON)
