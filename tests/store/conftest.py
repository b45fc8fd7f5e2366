"""Stores for the contract suite: SQLite always; PostgreSQL (READ COMMITTED and
SERIALIZABLE) when one is reachable, each test session in a database of its own.

PostgreSQL comes from ``SPLITVAULT_TEST_POSTGRES`` (a URL to a server where we may
create databases) or the local socket as user ``postgres``. Where none answers the
PostgreSQL cases skip with one line, unless ``SPLITVAULT_REQUIRE_POSTGRES=1`` (set
by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pg_support import postgres_url
from splitvault.hazmat import SqlStore, audit_chain
from splitvault.server import open_store

AUDIT_KEY = bytes(range(32))


@pytest.fixture(params=["sqlite", "postgres-read-committed", "postgres-serializable"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    kind = request.param
    if kind == "sqlite":
        opened = open_store(tmp_path / "server.db", create=True)
    else:
        url = postgres_url(request)
        isolation = "serializable" if kind.endswith("serializable") else "read committed"
        opened = open_store(url, isolation=isolation)
    opened.create()
    opened.attach_audit(audit_chain(AUDIT_KEY))
    yield opened
    opened.close()
