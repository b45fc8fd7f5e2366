"""A fresh PostgreSQL database per test, created and dropped around it.

The server comes from ``SPLITVAULT_TEST_POSTGRES`` (e.g. ``postgresql://postgres@127.0.0.1``)
or the local socket as ``postgres``. Unreachable: the test skips with one line, or
fails if ``SPLITVAULT_REQUIRE_POSTGRES=1`` (CI requires it).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

_CANDIDATES = ("postgresql://postgres@/postgres?host=/var/run/postgresql",
               "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin_url() -> str | None:
    try:
        import psycopg
    except ImportError:
        return None
    configured = os.environ.get("SPLITVAULT_TEST_POSTGRES")
    for url in ([configured] if configured else list(_CANDIDATES)):
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.Error:
            continue
    return None


_ADMIN: list[str | None] = []


def admin_url() -> str | None:
    if not _ADMIN:
        _ADMIN.append(_admin_url())
    return _ADMIN[0]


def _with_db(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    root = base.rsplit("/", 1)[0]
    return f"{root}/{name}" + (f"?{query}" if query else "")


@contextmanager
def temporary_database() -> Iterator[str]:
    """A new empty database; its URL; dropped afterwards."""
    import psycopg

    admin = admin_url()
    if admin is None:
        raise RuntimeError("no PostgreSQL")
    name = f"splitvault_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_db(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def require_postgres() -> str:
    """The admin URL, or skip (fail under SPLITVAULT_REQUIRE_POSTGRES=1)."""
    url = admin_url()
    if url is None:
        if os.environ.get("SPLITVAULT_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is required (SPLITVAULT_REQUIRE_POSTGRES=1) but none answers")
        pytest.skip("no PostgreSQL reachable (set SPLITVAULT_TEST_POSTGRES)")
    return url


def postgres_url(request: pytest.FixtureRequest) -> str:
    """A fresh database for this test, dropped when it ends."""
    require_postgres()
    cm = temporary_database()
    url = cm.__enter__()
    request.addfinalizer(lambda: cm.__exit__(None, None, None))
    return url
