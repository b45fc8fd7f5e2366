"""The PostgreSQL backend (psycopg 3 with psycopg_pool): many workers, many hosts.

Every write is one transaction at the chosen isolation level (READ COMMITTED by
default; the contract suite also runs SERIALIZABLE), committed with
``synchronous_commit = on`` so it is durable before the reply leaves. A transaction
that loses a conflict (SQLSTATE 40001 serialization failure, 40P01 deadlock) is run
again from the start with jittered back-off; the store's functions have no effect
outside their transaction, so a rerun is safe.

A read under READ COMMITTED runs in autocommit: one round trip per statement instead
of four (``BEGIN``, ``SET TRANSACTION READ ONLY``, the statement, ``COMMIT``). It sees
what it would see inside a transaction, because READ COMMITTED takes a new snapshot
for every statement anyway; and it stays read-only, enforced by PostgreSQL: every
session runs with ``default_transaction_read_only = on``, so an autocommit statement
that tries to write fails, and the store's writes open their transactions ``READ
WRITE`` explicitly. Under SERIALIZABLE a read keeps its transaction (``READ ONLY``):
its statements must share one snapshot.

The SQL is the store's shared SQL (``_sql.py``): no advisory locks, no LISTEN/NOTIFY,
no sequences, nothing PostgreSQL-only, so that the same store can run on CockroachDB
or YugabyteDB. Only PostgreSQL is tested (README, "What was tested").
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from .._errors import ConfigurationError, ServerUnavailable
from ._schema import Dialect
from ._sql import Row

__all__ = ["POSTGRES", "PostgresBackend", "is_postgres_url"]

T = TypeVar("T")

POSTGRES = Dialect("postgres", blob="BYTEA", real="DOUBLE PRECISION", int="BIGINT", strict="")

MAX_ATTEMPTS = 30
"""Reruns of a transaction that keeps losing conflicts before answering "busy": a
guess on a hot card under SERIALIZABLE may lose a few times, never thirty."""
POOL_MAX = 16
"""Connections per process: one per server thread that can be inside the store at
once (uvicorn's thread pool is 40, most of them waiting on the network)."""
_PLACEHOLDER = re.compile(r"\?")
_RETRY_STATES = frozenset({"40001", "40P01"})

Isolation = Literal["read committed", "serializable"]


def is_postgres_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def _load() -> Any:
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        raise ConfigurationError(
            "a PostgreSQL database needs the 'postgres' extra: "
            "pip install 'splitvault[postgres]'") from None
    return psycopg, psycopg_pool


class _Tx:
    __slots__ = ("cur",)

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def one(self, sql: str, *params: object) -> Row | None:
        self.cur.execute(_PLACEHOLDER.sub("%s", sql), params)
        row: Row | None = self.cur.fetchone() if self.cur.description else None
        return row

    def all(self, sql: str, *params: object) -> list[Row]:
        self.cur.execute(_PLACEHOLDER.sub("%s", sql), params)
        rows: list[Row] = self.cur.fetchall() if self.cur.description else []
        return rows

    def named(self, sql: str, *params: object) -> tuple[list[str], list[Row]]:
        """Rows and their column names (for the inspector's ``SELECT *``)."""
        self.cur.execute(_PLACEHOLDER.sub("%s", sql), params)
        names = [d.name for d in self.cur.description or ()]
        return names, self.cur.fetchall() if self.cur.description else []

    def run(self, sql: str, *params: object) -> int:
        self.cur.execute(_PLACEHOLDER.sub("%s", sql), params)
        if self.cur.description is not None:
            return len(self.cur.fetchall())
        count: int = self.cur.rowcount
        return count


class PostgresBackend:
    """A connection pool to one PostgreSQL database."""

    dialect = POSTGRES

    def __init__(self, url: str, *, isolation: Isolation = "read committed",
                 pool_max: int = POOL_MAX) -> None:
        psycopg, psycopg_pool = _load()
        self._psycopg = psycopg
        self._url = url
        self._isolation = {
            "read committed": psycopg.IsolationLevel.READ_COMMITTED,
            "serializable": psycopg.IsolationLevel.SERIALIZABLE,
        }[isolation]
        self.isolation = isolation
        self._closed = threading.Event()

        def configure(conn: Any) -> None:
            conn.isolation_level = self._isolation
            # Durable before the reply, whatever the server's default says.
            conn.execute("SET synchronous_commit = on")
            # Autocommit reads cannot write (module docstring); _run says READ WRITE or
            # READ ONLY in each BEGIN.
            conn.execute("SET default_transaction_read_only = on")

        try:
            self._pool = psycopg_pool.ConnectionPool(
                url, min_size=1, max_size=pool_max, open=True, timeout=30.0,
                kwargs={"autocommit": True}, configure=configure, name="splitvault")
            self._pool.wait(timeout=10.0)
        except psycopg_pool.PoolTimeout:
            self._pool.close()
            raise ConfigurationError(
                f"cannot connect to PostgreSQL at {self.describe()}; is it running, and "
                "does the database exist (createdb)?") from None
        except psycopg.Error as exc:
            raise ConfigurationError(
                f"cannot open PostgreSQL database {self.describe()}: "
                f"{type(exc).__name__}") from None

    def _run(self, fn: Callable[[_Tx], T], *, readonly: bool) -> T:
        psycopg = self._psycopg
        for attempt in range(MAX_ATTEMPTS):
            try:
                with self._pool.connection() as conn:
                    if readonly and self.isolation == "read committed":
                        with conn.cursor() as cur:  # autocommit (module docstring)
                            return fn(_Tx(cur))
                    conn.read_only = readonly  # BEGIN ... READ ONLY / READ WRITE
                    with conn.transaction(), conn.cursor() as cur:
                        return fn(_Tx(cur))
            except psycopg.Error as exc:
                if getattr(exc, "sqlstate", None) not in _RETRY_STATES:
                    if isinstance(exc, psycopg.OperationalError):
                        raise ServerUnavailable("the database is unreachable") from None
                    raise
                # Lost a conflict: back off a little, more each time, with jitter so
                # that the losers do not collide again in lockstep.
                time.sleep(min(0.002 * (2 ** min(attempt, 6)), 0.1)
                           * (0.5 + secrets.randbelow(1000) / 1000))
        raise ServerUnavailable("the database is too busy; try again shortly")

    def write(self, fn: Callable[[_Tx], T]) -> T:
        return self._run(fn, readonly=False)

    def read(self, fn: Callable[[_Tx], T]) -> T:
        return self._run(fn, readonly=True)

    def is_empty(self) -> bool:
        row = self.read(lambda tx: tx.one(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name = 'meta'"))
        return not (row and row[0])

    def scrub(self) -> None:
        """Nothing to do from here: PostgreSQL reclaims dead rows with VACUUM; an
        operator who needs deleted shares gone from the files runs VACUUM (README)."""

    def describe(self) -> str:
        return _redact(self._url)

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._pool.close()


def _redact(url: str) -> str:
    """The URL without its password (``postgresql://user:secret@host`` -> ``user@host``)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1@", url)
