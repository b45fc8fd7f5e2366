"""``ServerInspector``: the server as a breach sees it, for the attack suite and the lab.

Hazardous by design, like cryptography's ``hazmat``: it reads every row as stored,
unwraps values with the server's own keys, lists the key material an attacker who
dumps memory would find, writes to the database past every rule, and can make a
store operation fail (a full disk, say). An app never needs it; the attack suite,
the demo's security lab and the benchmarks use it instead of the server's private
attributes.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

from ._keyring import Keyring
from ._keys import ServerKeys
from ._schema import _TABLES as _SCHEMA_TEXT
from ._sql import Row, SqlStore

__all__ = ["ServerInspector"]


class ServerInspector:
    def __init__(self, store: SqlStore, keyring: Keyring, keys: ServerKeys) -> None:
        self._store = store
        self._keyring = keyring
        self._keys = keys

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of ``table`` as stored (column name -> value)."""
        if table not in self.tables():
            raise ValueError(f"unknown table {table!r}")
        names, rows = self._store.query_named(f"SELECT * FROM {table}")  # noqa: S608 (a known table name)  # nosec B608
        return [dict(zip(names, row, strict=True)) for row in rows]

    @staticmethod
    def tables() -> tuple[str, ...]:
        """Every table the store keeps."""
        return tuple(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", _SCHEMA_TEXT))

    def query(self, sql: str, *params: object) -> list[Row]:
        """A read-only SQL query (``?`` placeholders)."""
        return self._store.query(sql, *params)

    def tamper(self, sql: str, *params: object) -> int:
        """A write past every rule, as someone with database access would make it."""
        return self._store.tamper(sql, *params)

    def unwrap(self, purpose: str, row: str, blob: bytes) -> bytearray:
        """A stored wrapped value opened with the server's keys (the caller wipes it)."""
        return self._keyring.unwrap(purpose, row, blob)

    def wrapped_columns(self) -> tuple[tuple[str, str, str], ...]:
        return self._store.wrapped_columns()

    def key_material(self) -> dict[str, bytes]:
        """Every secret key the server holds in memory, by name (for leak scans)."""
        out = {"server envelope key": bytes(self._keys.x25519_secret),
               "audit key": bytes(self._keys.audit), "ledger key": bytes(self._keys.ledger)}
        for name, material in self._keyring.material().items():
            out[f"KEK {name}"] = material
        return out

    @contextlib.contextmanager
    def failing(self, operation: str, error: Callable[[], BaseException]) -> Iterator[None]:
        """While the block runs, the store operation ``operation`` raises ``error()``
        (a full disk when the ledger records an outcome, say)."""
        if not callable(getattr(type(self._store), operation, None)):
            raise ValueError(f"unknown store operation {operation!r}")

        def fail(*args: object, **kwargs: object) -> Any:
            raise error()
        setattr(self._store, operation, fail)
        try:
            yield
        finally:
            delattr(self._store, operation)


