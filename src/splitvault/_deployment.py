"""``Deployment``: which realms and gateways serve a card, and how many realms it takes.

The file is JSON, made by ``splitvault deployment init`` from the running servers (it
asks each for its key) and given, unchanged, to every device, realm and gateway::

    {
      "format": "splitvault-deployment/1",
      "threshold": 2,
      "realms": [
        {"name": "realm-1", "url": "https://r1.example:8443",
         "key": "<64 hex: the realm's X25519 key>", "tls_pin": "<64 hex or null>"},
        ...
      ],
      "gateways": [{"name": "gateway-1", "url": "...", "key": "...", "tls_pin": null}]
    }

A realm's ``key`` is its identity (two gateways over one store share their keys, so
they may list the same one): devices seal its part of each card to it, and a card
remembers which realm (by key) holds which Shamir index, so reordering or renaming the
realms in the file changes nothing. ``tls_pin`` is the SHA-256 of the server's DER
certificate (``--pin-sha256``), for a self-signed server.

What a realm takes from the file: the gateways it may seal shares to. What a gateway
takes: the realms whose shares it accepts and the threshold. Loading is strict: an
unknown field, a duplicate key or URL, a threshold outside ``1..n`` is a
``ConfigurationError`` naming it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ConfigurationError

__all__ = ["FORMAT", "MAX_REALMS", "Deployment", "DeploymentFile", "Endpoint"]

FORMAT = "splitvault-deployment/1"
MAX_REALMS = 16
"""More realms than any deployment needs, and few enough that a device's parallel
queries stay cheap (the crypto allows 255)."""
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9._-]{1,40}")


@dataclass(frozen=True)
class Endpoint:
    """One realm or gateway: a name for people and messages, its URL, its X25519 key
    and, for a self-signed TLS server, its certificate's SHA-256."""

    name: str
    url: str
    key: bytes
    tls_pin: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "key": self.key.hex(),
                "tls_pin": self.tls_pin}


@dataclass(frozen=True)
class Deployment:
    """The realms, the gateways and the threshold. Load with :meth:`load`."""

    realms: tuple[Endpoint, ...]
    gateways: tuple[Endpoint, ...]
    threshold: int

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Deployment:
        """Read and check a deployment file."""
        where = Path(path)
        try:
            text = where.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigurationError(f"no deployment file at {where}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read deployment file {where}: "
                                     f"{type(exc).__name__}") from None
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicates)
        except ValueError as exc:
            raise ConfigurationError(f"deployment file {where} is not valid JSON "
                                     f"({str(exc)[:80]})") from None
        return cls.from_json(data, str(where))

    @classmethod
    def from_json(cls, data: object, where: str = "deployment") -> Deployment:
        obj = _object(data, where, {"format", "threshold", "realms", "gateways"})
        if obj.get("format") != FORMAT:
            raise ConfigurationError(f"{where}: format must be {FORMAT!r}")
        threshold = obj.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise ConfigurationError(f"{where}: threshold must be an integer")
        realms = tuple(_endpoint(e, f"{where}: realms[{i}]")
                       for i, e in enumerate(_list(obj.get("realms"), f"{where}: realms")))
        gateways = tuple(_endpoint(e, f"{where}: gateways[{i}]")
                         for i, e in enumerate(_list(obj.get("gateways"),
                                                     f"{where}: gateways")))
        try:
            return cls(realms, gateways, threshold)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "threshold": self.threshold,
                "realms": [r.to_json() for r in self.realms],
                "gateways": [g.to_json() for g in self.gateways]}

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the file (0644: it holds only public keys and URLs); refuses to replace
        an existing one unless ``overwrite``."""
        where = Path(path)
        text = json.dumps(self.to_json(), indent=2) + "\n"
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        try:
            fd = os.open(where, flags, 0o644)
        except FileExistsError:
            raise ConfigurationError(f"{where} exists; refusing to replace it") from None
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)

    def realm(self, key: bytes) -> Endpoint | None:
        """The realm with this key, if it is one of this deployment's."""
        return next((r for r in self.realms if r.key == key), None)

    def gateway(self, key: bytes) -> Endpoint | None:
        return next((g for g in self.gateways if g.key == key), None)

    def __repr__(self) -> str:
        names = ", ".join(r.name for r in self.realms)
        return f"<Deployment {self.threshold}-of-{len(self.realms)} realms [{names}]>"


class DeploymentFile:
    """A deployment file a running realm or gateway follows: read when first needed and
    again whenever it changes on disk, so ``splitvault deployment init`` can be run
    against servers already up. None while no file exists; a file that stops being
    valid is a ``ConfigurationError`` on use (the servers refuse rather than guess)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._current: Deployment | None = None

    def __call__(self) -> Deployment | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._seen:
                self._current = Deployment.load(self.path)
                self._seen = stamp
            return self._current


def _check(d: Deployment) -> None:
    n = len(d.realms)
    if not 1 <= n <= MAX_REALMS:
        raise ConfigurationError(f"a deployment has 1 to {MAX_REALMS} realms, not {n}")
    if not d.gateways:
        raise ConfigurationError("a deployment needs at least one gateway")
    if isinstance(d.threshold, bool) or not isinstance(d.threshold, int) or not (
            1 <= d.threshold <= n):
        raise ConfigurationError(f"threshold must be between 1 and {n} (the realms)")
    if n > 1 and d.threshold == 1:
        # One realm alone would then release its whole share: a breach of any realm
        # would be a breach of all. Refused rather than allowed by a typo.
        raise ConfigurationError("threshold 1 with several realms lets any one realm serve "
                                 "a card alone; use at least 2")
    endpoints: Sequence[Endpoint] = (*d.realms, *d.gateways)
    # Gateways over one store share its keys (they are one gateway at several URLs), so a
    # gateway key may repeat; a realm's may not, nor be a gateway's.
    keys = [e.key.hex() for e in d.realms] + sorted({g.key.hex() for g in d.gateways})
    for what, values in (("name", [e.name for e in endpoints]),
                         ("url", [e.url for e in endpoints]),
                         ("key", keys)):
        seen: set[str] = set()
        for value in values:
            if value in seen:
                raise ConfigurationError(f"two servers share the {what} {value[:64]}")
            seen.add(value)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")
    return out


def _object(data: object, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where} must be a JSON object")
    unknown = sorted(str(k)[:40] for k in data if k not in allowed)
    if unknown:
        raise ConfigurationError(f"{where}: unknown field(s) {', '.join(unknown)}")
    missing = sorted(k for k in allowed if k not in data and k != "tls_pin")
    if missing:
        raise ConfigurationError(f"{where}: missing field(s) {', '.join(missing)}")
    return data


def _list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise ConfigurationError(f"{where} must be a list")
    return value


def _endpoint(data: object, where: str) -> Endpoint:
    obj = _object(data, where, {"name", "url", "key", "tls_pin"})
    name, url, key, pin = obj.get("name"), obj.get("url"), obj.get("key"), obj.get("tls_pin")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigurationError(f"{where}: name must be 1 to 40 letters, digits, '.-_'")
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s/?#]+", url):
        raise ConfigurationError(f"{where}: url must be http(s)://host:port, no path")
    if not isinstance(key, str) or not _HEX64.fullmatch(key):
        raise ConfigurationError(f"{where}: key must be 64 lowercase hex digits")
    if pin is not None and (not isinstance(pin, str) or not _HEX64.fullmatch(pin)):
        raise ConfigurationError(f"{where}: tls_pin must be null or 64 lowercase hex digits")
    if pin is not None and not url.startswith("https://"):
        raise ConfigurationError(f"{where}: a tls_pin needs an https:// url")
    return Endpoint(name, url, bytes.fromhex(key), pin)
