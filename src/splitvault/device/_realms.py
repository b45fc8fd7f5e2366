"""``RealmClient``: the device's view of a t-of-n deployment, and how it asks realms.

Realms are asked in parallel, each with the client's timeout, so a dead or slow realm
costs at most that timeout once per call, never per realm in turn. A realm that did not
answer is remembered as down for :data:`DOWN_SECONDS` and asked last (and only if the
others are not enough) until then: a payment with one realm down pays that timeout once,
and the next payments not at all.

A realm answers a card's device through ``RealmService`` (``_realm_protocol``): the HTTP
client of each realm (``HttpRealm``) by default, or any object with those methods (a
``ShareServer`` in this process, in tests and the demo).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

from .._deployment import Deployment, Endpoint
from .._errors import ConfigurationError, ServerUnavailable
from .._realm_protocol import GatewayService, RealmService

__all__ = ["DOWN_SECONDS", "RealmClient", "Unanswered"]

T = TypeVar("T")

DOWN_SECONDS = 30.0
"""How long a realm that did not answer is asked last."""


class Unanswered(ServerUnavailable):
    """A realm did not answer in time (or could not be reached)."""


class RealmClient:
    """The realms and gateways of ``deployment``. ``realms`` / ``gateways`` replace the
    HTTP clients by key (tests, the demo; gateways sharing a key share the object);
    ``timeout`` bounds every call to one server."""

    def __init__(self, deployment: Deployment, *, timeout: float = 10.0,
                 realms: Mapping[bytes, RealmService] | None = None,
                 gateways: Mapping[bytes, GatewayService] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(deployment, Deployment):
            raise ConfigurationError("deployment must be a splitvault.Deployment")
        if not timeout > 0:
            raise ConfigurationError("timeout must be positive")
        self.deployment = deployment
        self.timeout = timeout
        self._clock = clock
        self._owned: list[object] = []
        self._realms = {r.key: self._service(r, realms, "realm") for r in deployment.realms}
        self._gateways = {g.url: self._service(g, gateways, "gateway")
                          for g in deployment.gateways}
        self._down: dict[bytes, float] = {}
        self._left: dict[tuple[str, bytes], int] = {}
        self._closed = False
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=len(deployment.realms),
                                        thread_name_prefix="splitvault-realm")

    def _service(self, endpoint: Endpoint, given: Mapping[bytes, object] | None,
                 role: str) -> object:
        if given is not None and endpoint.key in given:
            return given[endpoint.key]
        from .._extras import require

        require("httpx", "client", "a device talking to remote realms")
        from ._http import HttpGateway, HttpRealm

        if role == "realm":
            # No connection retries: a realm that refuses is replaced by a spare at once
            # (the retries' pauses were most of a payment's cost after a realm died).
            client: object = HttpRealm(endpoint.url, pin_sha256=endpoint.tls_pin,
                                       timeout=self.timeout, connect_retries=0)
        else:
            client = HttpGateway(endpoint.url, pin_sha256=endpoint.tls_pin,
                                 timeout=self.timeout)
        self._owned.append(client)
        return client

    def __repr__(self) -> str:
        return f"<RealmClient {self.deployment!r}>"

    def close_transport(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        for client in self._owned:
            closer = getattr(client, "close_transport", None)
            if callable(closer):
                closer()

    @property
    def threshold(self) -> int:
        return self.deployment.threshold

    def name(self, key: bytes) -> str:
        endpoint = self.deployment.realm(key) or self.deployment.gateway(key)
        return endpoint.name if endpoint is not None else key.hex()[:16]

    def realm(self, key: bytes) -> RealmService:
        service = self._realms.get(key)
        if service is None:
            raise ConfigurationError("this card names a realm that is not in the deployment")
        return service  # type: ignore[return-value]

    def gateways(self) -> list[tuple[Endpoint, GatewayService]]:
        """The gateways, those not known to be down first."""
        order = sorted(self.deployment.gateways, key=lambda g: self._is_down(g.url.encode()))
        return [(g, self._gateways[g.url]) for g in order]  # type: ignore[misc]

    def mark_gateway(self, endpoint: Endpoint, up: bool) -> None:
        # By URL: gateways over one store share a key.
        self.mark(endpoint.url.encode(), up)

    def order(self, keys: Sequence[bytes], card_id: str = "",
              behind: Mapping[bytes, int] | None = None) -> list[bytes]:
        """``keys`` with the realms known to be down last; among the others, those with
        the most evaluations left for ``card_id`` first (as they last said), so the
        owner's wrong PINs are spread over the realms and the card locks after
        floor(n * G / t) of them, not after G at the first t; then those furthest
        ``behind`` (stable otherwise)."""
        with self._lock:
            left = {k: self._left.get((card_id, k), 1 << 30) for k in keys}
        lag = behind or {}
        return sorted(keys, key=lambda k: (self._is_down(k), -left[k], -lag.get(k, 0)))

    def note_left(self, card_id: str, key: bytes, left: int) -> None:
        """What a realm said remains for the card (its evaluation's ``attempts_left``)."""
        with self._lock:
            self._left[(card_id, key)] = left

    def is_down(self, key: bytes) -> bool:
        """Whether the realm (or gateway URL) did not answer in the last DOWN_SECONDS."""
        return self._is_down(key)

    def _is_down(self, key: bytes) -> bool:
        with self._lock:
            until = self._down.get(key)
            return until is not None and until > self._clock()

    def mark(self, key: bytes, up: bool) -> None:
        with self._lock:
            if up:
                self._down.pop(key, None)
            else:
                self._down[key] = self._clock() + DOWN_SECONDS

    def fan_out(self, keys: Sequence[bytes],
                call: Callable[[bytes, RealmService], T]) -> dict[bytes, T | BaseException]:
        """``call(key, realm)`` for every key, in parallel; each result or the exception
        it raised, with :class:`Unanswered` for a realm past the timeout. A realm that
        did not answer is marked down; one that answered anything, up."""
        if self._closed:
            raise ConfigurationError("this RealmClient is closed")
        futures: dict[bytes, Future[T]] = {
            key: self._pool.submit(call, key, self.realm(key)) for key in keys}
        # Each HTTP call ends within the timeout by itself (its deadline); the margin
        # only bounds an in-process service that hangs.
        wait(list(futures.values()), timeout=self.timeout + 0.5)
        out: dict[bytes, T | BaseException] = {}
        for key, future in futures.items():
            if not future.done():
                future.cancel()
                out[key] = Unanswered(f"realm {self.name(key)} did not answer within "
                                      f"{self.timeout:g} s")
                self.mark(key, False)
                continue
            error = future.exception()
            if error is None:
                out[key] = future.result()
                self.mark(key, True)
            else:
                out[key] = error
                self.mark(key, not isinstance(error, ServerUnavailable))
        return out
