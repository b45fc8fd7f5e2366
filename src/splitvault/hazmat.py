"""Hazardous materials: the protocol's internals, for the attack suite, the benchmarks,
the demo's security lab and tests. Like ``cryptography.hazmat``: an app never needs
anything here, and misusing it can leak what the public API protects.

Everything is re-exported lazily from the private module that owns it, so importing
this module loads nothing heavy, and the owners stay free to move code: a name here
is the stable one. What is here:

- the device's PIN glue (``BlindedPin``, ``derive_pin_seed``) and its stored card
  (``DeviceStore``, ``DeviceCard``), which an attacker who copies the device's files has;
- the protocol's messages a device sends (``EvaluateRequest``, ``AuthorizeRequest``,
  ``CardStatusRequest``) and the evaluation's reply (``EvaluateReply``), to craft,
  forge or intercept one below the ``Device`` API;
- the HTTP clients and app (``HttpShareService``, a realm's ``HttpRealm`` and a
  gateway's ``HttpGateway``, ``create_app``, ``JsonFormatter``, ``RateLimiter``);
- the server's store (``SqlStore``, ``SqliteBackend``, ``Tx``, ``open_store``), its
  inspector (``ServerInspector``) and its key (``Kek`` in a file, ``Pkcs11Kek`` in an
  HSM); its schema version
  (``SCHEMA_VERSION``, what ``splitvault db upgrade`` brings a database to) and its
  budget of evaluations without a proof (``UNPROVEN_LIMIT``);
- the audit log's MAC chain (``audit_chain``, ``verify_audit_chain``), to rewrite a log
  as an intruder with a guessed key would, and check one;
- the attack suite's byte scanner (``scan_files`` over a database and its WAL and
  journal, ``sqlite_files``), which looks for a secret in every encoding it might take;
- the re-split's rule (``judge_share_version``) and the sealed card record's AAD
  (``card_record_aad``), to check that the shares of one version open the card, and
  the proof a device's evaluation carries that it holds its share version
  (``device_possession``), for an attacker who copied the device's files;
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real names, for type checkers; at run time they load lazily
    from ._attack.scan import scan_files, sqlite_files
    from ._protocol import (
        AuthorizeRequest,
        CardStatusRequest,
        EvaluateReply,
        EvaluateRequest,
        card_record_aad,
    )
    from ._resplit import seal_refresh
    from .device._device import MAX_PHRASE
    from .device._device import possession as device_possession
    from .device._http import HttpGateway, HttpRealm, HttpShareService
    from .device._http import _reply as decode_reply
    from .device._pinkey import BlindedPin, derive_pin_seed
    from .device._store import DeviceCard, DeviceStore
    from .server._access import JsonFormatter
    from .server._audit import chain as audit_chain
    from .server._audit import verify as verify_audit_chain
    from .server._http import create_app
    from .server._inspect import ServerInspector
    from .server._kek import Kek
    from .server._pkcs11 import Pkcs11Kek
    from .server._ratelimit import RateLimiter
    from .server._refresh import judge as judge_share_version
    from .server._schema import SCHEMA_VERSION
    from .server._server import open_store
    from .server._simulated import SimulatedAcquirer
    from .server._sql import SqlStore, Tx
    from .server._sqlite import SqliteBackend
    from .server._store import UNPROVEN_LIMIT

__all__ = [
    "MAX_PHRASE",
    "SCHEMA_VERSION",
    "UNPROVEN_LIMIT",
    "AuthorizeRequest",
    "BlindedPin",
    "CardStatusRequest",
    "DeviceCard",
    "DeviceStore",
    "EvaluateReply",
    "EvaluateRequest",
    "HttpGateway",
    "HttpRealm",
    "HttpShareService",
    "JsonFormatter",
    "Kek",
    "Pkcs11Kek",
    "RateLimiter",
    "ServerInspector",
    "SimulatedAcquirer",
    "SqlStore",
    "SqliteBackend",
    "Tx",
    "audit_chain",
    "card_record_aad",
    "create_app",
    "decode_reply",
    "derive_pin_seed",
    "device_possession",
    "judge_share_version",
    "open_store",
    "scan_files",
    "seal_refresh",
    "sqlite_files",
    "verify_audit_chain",
]

_WHERE = {
    "BlindedPin": ("splitvault.device._pinkey", "BlindedPin"),
    "derive_pin_seed": ("splitvault.device._pinkey", "derive_pin_seed"),
    "DeviceStore": ("splitvault.device._store", "DeviceStore"),
    "device_possession": ("splitvault.device._device", "possession"),
    "DeviceCard": ("splitvault.device._store", "DeviceCard"),
    "MAX_PHRASE": ("splitvault.device._device", "MAX_PHRASE"),
    "EvaluateRequest": ("splitvault._protocol", "EvaluateRequest"),
    "EvaluateReply": ("splitvault._protocol", "EvaluateReply"),
    "AuthorizeRequest": ("splitvault._protocol", "AuthorizeRequest"),
    "CardStatusRequest": ("splitvault._protocol", "CardStatusRequest"),
    "HttpShareService": ("splitvault.device._http", "HttpShareService"),
    "HttpRealm": ("splitvault.device._http", "HttpRealm"),
    "HttpGateway": ("splitvault.device._http", "HttpGateway"),
    "decode_reply": ("splitvault.device._http", "_reply"),
    "create_app": ("splitvault.server._http", "create_app"),
    "JsonFormatter": ("splitvault.server._access", "JsonFormatter"),
    "RateLimiter": ("splitvault.server._ratelimit", "RateLimiter"),
    "SqlStore": ("splitvault.server._sql", "SqlStore"),
    "Tx": ("splitvault.server._sql", "Tx"),
    "SqliteBackend": ("splitvault.server._sqlite", "SqliteBackend"),
    "open_store": ("splitvault.server._server", "open_store"),
    "SCHEMA_VERSION": ("splitvault.server._schema", "SCHEMA_VERSION"),
    "UNPROVEN_LIMIT": ("splitvault.server._store", "UNPROVEN_LIMIT"),
    "ServerInspector": ("splitvault.server._inspect", "ServerInspector"),
    "Kek": ("splitvault.server._kek", "Kek"),
    "Pkcs11Kek": ("splitvault.server._pkcs11", "Pkcs11Kek"),
    "audit_chain": ("splitvault.server._audit", "chain"),
    "verify_audit_chain": ("splitvault.server._audit", "verify"),
    "SimulatedAcquirer": ("splitvault.server._simulated", "SimulatedAcquirer"),
    "card_record_aad": ("splitvault._protocol", "card_record_aad"),
    "judge_share_version": ("splitvault.server._refresh", "judge"),
    "seal_refresh": ("splitvault._resplit", "seal_refresh"),
    "scan_files": ("splitvault._attack.scan", "scan_files"),
    "sqlite_files": ("splitvault._attack.scan", "sqlite_files"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'splitvault.hazmat' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
