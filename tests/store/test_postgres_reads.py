"""A read on PostgreSQL cannot write: under READ COMMITTED it runs in autocommit (one
round trip a statement), under SERIALIZABLE in a READ ONLY transaction, and in both
the database itself refuses a write (``default_transaction_read_only``), however the
statement is dressed up; nothing changes."""

from __future__ import annotations

import psycopg
import pytest

from pg_support import postgres_url
from splitvault.server._postgres import Isolation, PostgresBackend

_WRITES = (
    "INSERT INTO t VALUES (2)",
    "WITH gone AS (DELETE FROM t RETURNING x) SELECT count(*) FROM gone",
    "SELECT 1; DELETE FROM t",
)


@pytest.mark.parametrize("isolation", ["read committed", "serializable"])
def test_a_read_cannot_write(request: pytest.FixtureRequest, isolation: Isolation) -> None:
    backend = PostgresBackend(postgres_url(request), isolation=isolation)
    try:
        backend.write(lambda tx: tx.run("CREATE TABLE t (x BIGINT)"))
        backend.write(lambda tx: tx.run("INSERT INTO t VALUES (1)"))
        for sql in _WRITES:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                backend.read(lambda tx, sql=sql: tx.all(sql))
        assert backend.read(lambda tx: tx.one("SELECT count(*) FROM t")) == (1,)
        # and the writes on the same pooled connections still write
        assert backend.write(lambda tx: tx.run("INSERT INTO t VALUES (3)")) == 1
        assert backend.read(lambda tx: tx.one("SELECT count(*) FROM t")) == (2,)
    finally:
        backend.close()
