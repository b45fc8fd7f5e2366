"""The OpenAPI 3.1 document, built from the same definitions the server validates with.

Schemas come from :mod:`splitvault._wire` (each message describes itself), routes and
error statuses from :mod:`splitvault._http_api`: there is no second copy to drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._http_api import COMMON_ERRORS, ROUTES, STATUS, Route
from .._realm_api import MESSAGES as REALM_MESSAGES
from .._version import __version__
from .._wire import MESSAGES

__all__ = ["openapi_document"]

_REASONS = {
    400: "Malformed request, bad payment or failed proof of possession (nothing changed)",
    401: "Wrong PIN: a guess was spent; `attempts_left` says how many remain",
    404: "Unknown card (or not signed by the card's device: the same answer)",
    409: "Conflict: challenge used or expired, idempotency key reused, or payment in doubt",
    413: "Body larger than the limit (nothing read past it)",
    415: "Body is not application/json",
    423: "Card locked after too many wrong PINs",
    429: "Too many requests from this address (see Retry-After)",
    500: "Internal error (the message never says more)",
    502: "A realm answered wrongly (the gateway names it): nothing was charged",
    503: "Acquirer unavailable, or a realm or gateway without its deployment file: "
         "nothing was charged, a retry may succeed",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": _json(_ref(route.reply.name))},
    }
    statuses = set(COMMON_ERRORS) | {STATUS[code] for code in route.errors}
    if route.request is None:
        statuses -= {400, 413, 415}
    for status in sorted(statuses):
        responses[str(status)] = {"description": _REASONS[status], "content": _json(_ref("Error"))}
    op: dict[str, Any] = {"operationId": route.method, "summary": route.summary,
                          "responses": responses}
    if route.request is not None:
        op["requestBody"] = {"required": True, "content": _json(_ref(route.request.name))}
    return op


def _probe(summary: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    status = {"type": "object", "required": ["status"],
              "properties": {"status": {"type": "string"}}}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": _json(status)}}
    responses.update(extra or {})
    return {"get": {"operationId": summary.split()[0].lower(), "summary": summary,
                    "responses": responses}}


def openapi_document(max_body: int, routes: Sequence[Route] = ROUTES,
                     title: str = "splitvault share server") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (a role's: the single server's by default,
    or a realm's or a gateway's)."""
    paths: dict[str, Any] = {}
    for route in routes:
        paths[route.path] = {"get" if route.request is None else "post": _operation(route)}
    paths["/healthz"] = _probe("Healthz: the process is up")
    paths["/readyz"] = _probe("Readyz: the database answers", {
        "503": {"description": "Database unreachable", "content": _json(_ref("Error"))}})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": __version__,
            "description": (
                "The share server of a split-key card vault. Bytes are unpadded base64url. "
                f"Bodies are at most {max_body} bytes of application/json. Every error is "
                "`{error, message}` with a stable code. Request ids: send `X-Request-Id` "
                "(1-64 of A-Z a-z 0-9 . _ -) or one is made; it is echoed back."
            ),
        },
        "paths": paths,
        "components": {"schemas": {m.name: m.schema() for m in (*MESSAGES, *REALM_MESSAGES)}},
    }
