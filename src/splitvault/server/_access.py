"""The outermost layers of the HTTP app: admission (:class:`ServeGuard`: shutdown
drain and a bound on requests in flight), request ids, rate limiting, JSON access
logs, and the last line of defence against exceptions.

Each request gets one log line: a JSON object with ts, level, request_id, method,
path, status, duration_ms, the error code if any, and the card id if the body named
one (card ids are random and name nobody). Bodies, headers and exception messages are
never logged: any of them could carry key material or card data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
import traceback
from datetime import UTC, datetime
from typing import IO, Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._http_api import error_body
from ._ratelimit import LimitedLogHandler, RateLimiter

__all__ = ["CONTEXT_KEY", "AccessMiddleware", "JsonFormatter", "ServeGuard",
           "configure_logging"]

#: The scope key under which handlers leave what the access log should say.
CONTEXT_KEY = "splitvault.context"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_UNLIMITED = frozenset({"/healthz", "/readyz"})

access_log = logging.getLogger("splitvault.http")


class JsonFormatter(logging.Formatter):
    """One JSON object per line. An exception is reduced to its type and where it was
    raised: its message (and so a traceback's text) may hold secrets."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            out["exc_where"] = _where(record.exc_info[2])
        return json.dumps(out, default=str, ensure_ascii=False)


def _where(tb: Any) -> list[str]:
    frames = traceback.extract_tb(tb)[-4:]
    return [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames]


def configure_logging(level: str, stream: IO[str]) -> None:
    """Send every log record (uvicorn's and asyncio's included) to ``stream`` as JSON
    lines, through the log limiter: a flood of bad connections cannot fill the disk."""
    stream_handler = logging.StreamHandler(stream)
    stream_handler.setFormatter(JsonFormatter())
    handler = LimitedLogHandler(stream_handler)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


class AccessMiddleware:
    """Pure ASGI middleware around the Starlette app (outside its error middleware, so
    that even an exception Starlette re-raises ends here, logged and answered)."""

    def __init__(self, app: ASGIApp, *, limiter: RateLimiter | None) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        context: dict[str, Any] = {"error": None, "card_id": None}
        scope[CONTEXT_KEY] = context
        response: dict[str, Any] = {"status": 0}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        try:
            wait = self._throttle(scope)
            if wait > 0.0:
                context["error"] = "rate_limited"
                await _send_error(send_with_id, 429, "rate_limited",
                                  "too many requests from this address; retry later",
                                  retry_after=RateLimiter.retry_after(wait))
            else:
                await self.app(scope, receive, send_with_id)
        except Exception:
            context["error"] = "internal_error"
            access_log.error("unhandled exception", exc_info=True,
                             extra={"fields": {"request_id": request_id}})
            if response["status"] == 0:
                await _send_error(send_with_id, 500, "internal_error", "internal server error")
        finally:
            _log(scope, request_id, response["status"], context, started)

    def _throttle(self, scope: Scope) -> float:
        if self.limiter is None or scope.get("path") in _UNLIMITED:
            return 0.0
        client = scope.get("client")
        return self.limiter.take(str(client[0]) if client else "unknown")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = bytes(value).decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
            break
    return secrets.token_hex(8)


async def _send_error(send: Send, status: int, code: str, message: str, *,
                      retry_after: str | None = None) -> None:
    body = error_body(code, message)
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode("ascii"))]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after.encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _log(scope: Scope, request_id: str, status: int, context: dict[str, Any],
         started: float) -> None:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "method": scope.get("method"),
        "path": str(scope.get("path", ""))[:200],  # strangers choose paths
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000.0, 2),
    }
    if context.get("error"):
        fields["error"] = context["error"]
    if context.get("card_id"):
        fields["card_id"] = context["card_id"]
    level = logging.ERROR if status >= 500 or status == 0 else logging.INFO
    access_log.log(level, "request", extra={"fields": fields})


class ServeGuard:
    """Admission, outside everything else: while :attr:`draining`, every new request
    gets 503 ``shutting_down`` (and ``connection: close``); past ``max_requests`` in
    flight, 503 ``busy`` with ``Retry-After``. :meth:`drained` waits for the requests
    admitted before the drain began, so the ShareServer is closed only after them."""

    def __init__(self, app: ASGIApp, *, max_requests: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self.draining = False
        self.active = 0
        self._idle: asyncio.Event | None = None

    def drain(self) -> None:
        """Refuse new work from now on. Safe to call from a signal handler."""
        self.draining = True

    async def drained(self, timeout: float) -> bool:
        """True once no admitted request is left, False if ``timeout`` passed first."""
        self.draining = True
        if self.active == 0:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.draining or self.active >= self.max_requests:
            await self._refuse(scope, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
            if self.active == 0 and self._idle is not None:
                self._idle.set()

    async def _refuse(self, scope: Scope, send: Send) -> None:
        started = time.perf_counter()
        request_id = _request_id(scope)
        if self.draining:
            code, message, retry = "shutting_down", "the server is shutting down; retry", None
        else:
            code, message, retry = "busy", "the server is busy; retry shortly", "1"
        body = error_body(code, message)
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode("ascii")),
                   (b"connection", b"close"), (b"x-request-id", request_id.encode("ascii"))]
        if retry is not None:
            headers.append((b"retry-after", retry.encode("ascii")))
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        _log(scope, request_id, 503, {"error": code}, started)
