"""``HttpShareService``: the :class:`ShareService` of a share server reached over HTTP(S).

Certificate pinning: with ``pin_sha256`` (hex SHA-256 of the server's DER
certificate, as ``splitvault serve --dev-tls`` prints it), CA and host name checks are
replaced by an exact check of the certificate the server presents, done inside the TLS
handshake of *every* connection, before a single request byte is written. A mismatch
fails closed with ``ServerUnavailable``. Without a pin, the usual CA and host name
verification applies. Plain ``http://`` is refused except to a loopback address.

Retries, where the protocol makes them safe and nowhere else:

- a connection that could not be made (refused, reset or timed out while connecting,
  no pooled connection free) sent nothing, so any call is retried, a few times;
- ``info`` changes nothing, so it is also retried after a read timeout or a dropped
  connection;
- every other call may have reached the server once its request was written. A
  second ``evaluate`` would spend a second guess, a second ``enroll_*``, ``delete`` or
  PIN change would fail on state the first one changed. These raise
  ``ServerUnavailable`` instead;
- ``authorize`` is not resent here either; ``Device.authorize`` resends the *same*
  request once: the server answers a re-sent, verifying proof for a challenge it
  already consumed with the result it recorded, never a second charge and never a
  second guess. A new evaluation needs the user: ``Device`` never starts one on
  its own.

Every call, retries and their pauses included, ends within ``timeout`` seconds of wall
time: a server that trickles its reply is cut off at the deadline (see
:mod:`splitvault.device._deadline`), not after ``timeout`` seconds of silence.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import socket
import ssl
import time
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

import httpx

from .._errors import (
    AcquirerUnavailable,
    CardLocked,
    ConfigurationError,
    DeviceCloned,
    IdempotencyConflict,
    InvalidCard,
    InvalidChallenge,
    InvalidPayment,
    InvalidPhrase,
    InvalidPin,
    MalformedRequest,
    PaymentInDoubt,
    RateLimited,
    RealmFaulty,
    ServerRolledBack,
    ServerUnavailable,
    TamperedData,
    UnknownCard,
    VaultError,
    WeakPin,
    WrongPin,
)
from .._http_api import ROUTES, Route
from .._protocol import (
    AuthorizeReply,
    AuthorizeRequest,
    CardStatusReply,
    CardStatusRequest,
    ChangePinBegin,
    ChangePinFinish,
    DeleteRequest,
    EnrollBegin,
    EnrollBeginReply,
    EnrollFinish,
    EvaluateReply,
    EvaluateRequest,
    ReenrollBegin,
    ReenrollFinish,
    ServerInfo,
)
from .._realm_api import GATEWAY_ROUTES, REALM_ROUTES
from .._realm_protocol import (
    GatewayAuthorize,
    GatewayInfo,
    GatewayReply,
    RealmCatchUp,
    RealmCatchUpReply,
    RealmEvaluate,
    RealmEvaluateReply,
    RealmInfo,
    RealmRegister,
    RealmRelease,
    RealmReleaseReply,
)
from .._wire import ERROR, ErrorBody, dumps, loads
from ._deadline import DeadlineBackend, deadline, remaining

__all__ = ["HttpGateway", "HttpRealm", "HttpShareService"]

MAX_RESPONSE = 64 * 1024
"""Largest response read: far above any reply, so a hostile server cannot make the
device buffer without bound."""
CONNECT_RETRIES = 2
"""Extra attempts after a failed connection: rides out a server restart's gap."""
KEEPALIVE_SECONDS = 2.0
"""Idle pooled connections are dropped after this, below the server's 5 s keep-alive:
reusing a connection the server is just closing would turn a harmless "not sent"
into an ambiguous "maybe sent"."""
_SAFE_TO_RESEND = frozenset({"info", "realm_info", "gateway_info", "realm_register",
                             "gateway_authorize"})
"""Calls answered alike however often they arrive: a registration already held is
accepted again unchanged, and a gateway answers a payment's key from its ledger."""
_LOOPBACK_NAMES = frozenset({"localhost"})
_PIN = re.compile(r"[0-9a-f]{64}")
_PIN_MISMATCH = ("server certificate does not match the pinned fingerprint (pin_sha256 / "
                 "--pin-sha256): the server presents another certificate; "
                 "'splitvault serve --dev-tls' prints its fingerprint when it starts")
_UNVERIFIED = ("server certificate failed verification ({why}) and no pin was given: for a "
               "self-signed server pass pin_sha256= (CLI: --pin-sha256) with the SHA-256 "
               "fingerprint that 'splitvault serve --dev-tls' prints when it starts")
_PLAIN_TO_TLS = ("the server at {url} speaks TLS: use https:// (with pin_sha256= / "
                 "--pin-sha256 for a self-signed server), not http://")
_TLS_TO_PLAIN = ("the server at {url} does not speak TLS on this port: it answers plain "
                 "HTTP (use http:// to a loopback address, or start it with --dev-tls)")
_ROUTES = {route.method: route for route in ROUTES}

_FIXED: dict[str, type[VaultError]] = {
    "card_locked": CardLocked,
    "device_cloned": DeviceCloned,
    "server_rolled_back": ServerRolledBack,
    "unknown_card": UnknownCard,
    "idempotency_conflict": IdempotencyConflict,
    "tampered_data": TamperedData,
    "invalid_challenge": InvalidChallenge,
    "acquirer_unavailable": AcquirerUnavailable,
    "payment_in_doubt": PaymentInDoubt,
}
# A realm the gateway names in its message: kept as said (printable only).
_NAMED: dict[str, type[VaultError]] = {"configuration_error": ConfigurationError}
_WITH_MESSAGE: dict[str, type[VaultError]] = {
    "malformed_request": MalformedRequest,
    "invalid_payment": InvalidPayment,
    "invalid_card": InvalidCard,
    "invalid_pin": InvalidPin,
    "weak_pin": WeakPin,
    "invalid_phrase": InvalidPhrase,
}


class _PinMismatch(ssl.SSLCertVerificationError):
    """Raised inside the handshake; an OSError, so the socket is closed at once."""


class _PinnedSocket(ssl.SSLSocket):
    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        context = self.context
        der = self.getpeercert(binary_form=True)
        if not isinstance(context, _PinnedContext) or der is None or not hmac.compare_digest(
                hashlib.sha256(der).digest(), context.pin):
            raise _PinMismatch(_PIN_MISMATCH)


class _PinnedContext(ssl.SSLContext):
    """A TLS client context that trusts exactly one certificate, by its SHA-256.

    CA and host name checks are off *only* because the pin check replaces them: it
    runs in every handshake (``sslsocket_class``), on the certificate actually used.
    """

    sslsocket_class = _PinnedSocket
    pin: bytes


def _pinned_context(pin: bytes) -> _PinnedContext:
    context = _PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.pin = pin
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _check_pin(pin: str) -> bytes:
    text = pin.strip().replace(":", "").lower()
    if not _PIN.fullmatch(text):
        raise ConfigurationError(
            "pin_sha256 must be 64 hex digits: the SHA-256 of the server's DER certificate")
    return bytes.fromhex(text)


def _check_url(url: str, pinned: bool) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        raise ConfigurationError("server URL is malformed") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigurationError("server URL must be https://host[:port]")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigurationError("server URL must not carry credentials, a query or a fragment")
    if parts.scheme == "http":
        if pinned:
            raise ConfigurationError("pin_sha256 needs an https:// server URL")
        if not _is_loopback(host):
            raise ConfigurationError("plain http:// is allowed only to a loopback address; "
                                     "use https://")
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


class _NotSent(Exception):
    """The request never left: a retry cannot do anything twice."""


class _MaybeSent(Exception):
    """The request may have reached the server."""


class _HttpTransport:
    """One server at ``url`` answering ``routes``. Safe to use from several threads (the
    connection pool is); close it with :meth:`close_transport`."""

    _routes: ClassVar[dict[str, Route]] = _ROUTES

    def __init__(self, url: str, *, pin_sha256: str | None = None, timeout: float = 10.0,
                 connect_retries: int = CONNECT_RETRIES,
                 transport: httpx.BaseTransport | None = None) -> None:
        pin = _check_pin(pin_sha256) if pin_sha256 is not None else None
        self.url = _check_url(url, pinned=pin is not None)
        if not timeout > 0:
            raise ConfigurationError("timeout must be positive")
        self._retries = max(0, connect_retries)
        self._timeout = timeout
        verify: ssl.SSLContext | bool = _pinned_context(pin) if pin is not None else True
        limits = httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS)
        self._client = httpx.Client(
            base_url=self.url, verify=verify,
            transport=transport if transport is not None else _deadline_transport(verify, limits),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=limits,
            # No proxies or CA bundles from the environment: the device talks to the
            # server it was configured for, and a pin means exactly that certificate.
            trust_env=False, follow_redirects=False,
            headers={"accept": "application/json", "accept-encoding": "identity"},
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    def close_transport(self) -> None:
        self._client.close()

    # -- internals -----------------------------------------------------------------------

    def _call(self, method: str, message: object) -> Any:
        route = self._routes[method]
        body = dumps(route.request, message) if route.request is not None else None
        request_id = secrets.token_hex(8)  # the same id on every attempt of one call
        with deadline(self._timeout):  # one deadline for every attempt and pause
            for attempt in range(self._retries + 1):
                pause = 0.1 * 2**attempt
                last = attempt == self._retries or (remaining() or 0.0) <= pause
                try:
                    status, data = self._send(route, body, request_id)
                except _NotSent:
                    if last:
                        raise ServerUnavailable(
                            f"cannot connect to the share server at {self.url}") from None
                except _MaybeSent:
                    if last or method not in _SAFE_TO_RESEND:
                        raise ServerUnavailable(
                            "no answer from the share server; the request may have reached it"
                        ) from None
                else:
                    return _reply(route, status, data)
                time.sleep(pause)
        raise ServerUnavailable("cannot connect to the share server")  # not reached

    def _send(self, route: Route, body: bytes | None, request_id: str) -> tuple[int, bytes]:
        headers = {"x-request-id": request_id}
        if body is not None:
            headers["content-type"] = "application/json"
        request = self._client.build_request("GET" if body is None else "POST", route.path,
                                             content=body, headers=headers)
        try:
            response = self._client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            self._explain_tls_failure(exc)  # never retried: it would fail the same way
            raise _NotSent from None
        except httpx.RemoteProtocolError:
            if self.url.startswith("http://") and _speaks_tls(self.url):
                raise ServerUnavailable(_PLAIN_TO_TLS.format(url=self.url)) from None
            raise _MaybeSent from None
        except httpx.HTTPError:
            raise _MaybeSent from None
        try:
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_RESPONSE:
                    raise ServerUnavailable("unexpected response from the share server")
            return response.status_code, bytes(data)
        except httpx.HTTPError:
            raise _MaybeSent from None
        finally:
            response.close()


    def _explain_tls_failure(self, exc: BaseException) -> None:
        """Raise ``ServerUnavailable`` saying what to do if ``exc`` is a TLS failure."""
        causes = _causes(exc)
        if any(isinstance(e, _PinMismatch) for e in causes):
            raise ServerUnavailable(_PIN_MISMATCH) from None
        failed = [e for e in causes if isinstance(e, ssl.SSLCertVerificationError)]
        if failed:
            why = getattr(failed[0], "verify_message", None) or "untrusted certificate"
            raise ServerUnavailable(_UNVERIFIED.format(why=why)) from None
        if any(isinstance(e, ssl.SSLError) and e.reason == "WRONG_VERSION_NUMBER"
               for e in causes):
            raise ServerUnavailable(_TLS_TO_PLAIN.format(url=self.url)) from None


class HttpShareService(_HttpTransport):
    """The single share server at ``url`` (``splitvault serve``)."""

    # -- ShareService --------------------------------------------------------------------

    def info(self) -> ServerInfo:
        return cast(ServerInfo, self._call("info", None))

    def enroll_begin(self, request: EnrollBegin) -> EnrollBeginReply:
        return cast(EnrollBeginReply, self._call("enroll_begin", request))

    def enroll_finish(self, request: EnrollFinish) -> None:
        self._call("enroll_finish", request)

    def evaluate(self, request: EvaluateRequest) -> EvaluateReply:
        return cast(EvaluateReply, self._call("evaluate", request))

    def authorize(self, request: AuthorizeRequest) -> AuthorizeReply:
        return cast(AuthorizeReply, self._call("authorize", request))

    def change_pin_begin(self, request: ChangePinBegin) -> EvaluateReply:
        return cast(EvaluateReply, self._call("change_pin_begin", request))

    def change_pin_finish(self, request: ChangePinFinish) -> None:
        self._call("change_pin_finish", request)

    def delete(self, request: DeleteRequest) -> None:
        self._call("delete", request)

    def card_status(self, request: CardStatusRequest) -> CardStatusReply:
        return cast(CardStatusReply, self._call("card_status", request))

    def reenroll_begin(self, request: ReenrollBegin) -> EvaluateReply:
        return cast(EvaluateReply, self._call("reenroll_begin", request))

    def reenroll_finish(self, request: ReenrollFinish) -> None:
        self._call("reenroll_finish", request)


class HttpRealm(_HttpTransport):
    """One realm of a t-of-n deployment (``splitvault serve --role realm``)."""

    _routes: ClassVar[dict[str, Route]] = {route.method: route for route in REALM_ROUTES}

    def realm_info(self) -> RealmInfo:
        return cast(RealmInfo, self._call("realm_info", None))

    def realm_register(self, request: RealmRegister) -> None:
        self._call("realm_register", request)

    def realm_evaluate(self, request: RealmEvaluate) -> RealmEvaluateReply:
        return cast(RealmEvaluateReply, self._call("realm_evaluate", request))

    def realm_release(self, request: RealmRelease) -> RealmReleaseReply:
        return cast(RealmReleaseReply, self._call("realm_release", request))

    def delete(self, request: DeleteRequest) -> None:
        self._call("delete", request)

    def realm_status(self, request: CardStatusRequest) -> CardStatusReply:
        return cast(CardStatusReply, self._call("realm_status", request))

    def realm_catch_up(self, request: RealmCatchUp) -> RealmCatchUpReply:
        return cast(RealmCatchUpReply, self._call("realm_catch_up", request))


class HttpGateway(_HttpTransport):
    """One gateway of a t-of-n deployment (``splitvault serve --role gateway``)."""

    _routes: ClassVar[dict[str, Route]] = {route.method: route for route in GATEWAY_ROUTES}

    def gateway_info(self) -> GatewayInfo:
        return cast(GatewayInfo, self._call("gateway_info", None))

    def gateway_authorize(self, request: GatewayAuthorize) -> GatewayReply:
        return cast(GatewayReply, self._call("gateway_authorize", request))


def _speaks_tls(url: str) -> bool:
    """Whether the server at this ``http://`` URL completes a TLS handshake instead.

    Asked only after a plain request got no HTTP answer (a TLS port drops it), to say
    so rather than "no answer". Nothing is sent but a ClientHello, and the certificate
    is not looked at: this only names the mistake, it trusts nothing."""
    parts = urlsplit(url)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80),
                                      timeout=min(remaining() or 2.0, 2.0)) as raw, \
                context.wrap_socket(raw, server_hostname=parts.hostname):
            return True
    except (OSError, ValueError):
        return False


def _deadline_transport(verify: ssl.SSLContext | bool,
                        limits: httpx.Limits) -> httpx.HTTPTransport:
    """httpx's own transport, its connections made by :class:`DeadlineBackend`.

    httpx 0.28 takes no network backend, so it is set on the httpcore pool it built;
    checked here so that an httpx that moved it fails loudly rather than silently
    losing the deadline."""
    transport = httpx.HTTPTransport(verify=verify, limits=limits, trust_env=False)
    pool = getattr(transport, "_pool", None)
    if not hasattr(pool, "_network_backend"):
        raise ConfigurationError("unsupported httpx version: cannot set the request deadline")
    pool._network_backend = DeadlineBackend()  # type: ignore[union-attr]
    return transport


def _reply(route: Route, status: int, data: bytes) -> Any:
    """The decoded reply, or the error the server answered, as the in-process server
    would have raised it. Anything unexpected is ``ServerUnavailable``."""
    if status == 200:
        try:
            reply = loads(route.reply, data, limit=MAX_RESPONSE)
        except MalformedRequest:
            raise ServerUnavailable("unexpected response from the share server") from None
        return None if route.reply.name == "Empty" else reply
    try:
        error = loads(ERROR, data, limit=MAX_RESPONSE)
    except MalformedRequest:
        raise ServerUnavailable(
            f"unexpected response from the share server (HTTP {status})") from None
    raise _exception(error)


def _exception(error: ErrorBody) -> VaultError:
    code = error.error
    if code == "wrong_pin":
        if error.attempts_left is None:
            return ServerUnavailable("unexpected response from the share server")
        return WrongPin(error.attempts_left)
    if code in _FIXED:
        return _FIXED[code]()  # the fixed wording, whatever the server said
    if code in _WITH_MESSAGE:
        # These say which field was wrong; kept printable in case of a strange server.
        return _WITH_MESSAGE[code]("".join(ch for ch in error.message if ch.isprintable()))
    if code == "realm_faulty":
        return RealmFaulty((), "".join(ch for ch in error.message if ch.isprintable()))
    if code in _NAMED:
        return _NAMED[code]("".join(ch for ch in error.message if ch.isprintable()))
    if code == "rate_limited":
        return RateLimited("the share server is rate limiting this device; retry later")
    return ServerUnavailable(f"the share server failed ({code})")
