"""Authorizations per second over HTTP with the store in PostgreSQL, 1 and 2 workers.

For each worker count, a fresh database is created (and dropped afterwards), ``splitvault
serve --workers N --db postgresql://...`` is started on it, 32 clients are enrolled, and
they pay back to back (``_load.closed_loop``). Reported per worker count: throughput,
p50 and p99, and CPU per authorization, both of the server (the supervisor and its
workers, user + system from /proc, measured over the timed window only) and of the
PostgreSQL backends serving this database (found by its name in their process titles).

PostgreSQL comes from ``SPLITVAULT_BENCH_POSTGRES`` (an admin URL, e.g.
``postgresql://postgres@127.0.0.1/postgres``) or the local socket as ``postgres``; if
none answers (or psycopg is not installed) the section says ``skipped`` and why.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._load import clients, closed_loop, cpu_of, percentiles, serve

__all__ = ["admin_url", "render", "run", "temporary_database"]

WORKERS = (1, 2)
_CANDIDATES = ("postgresql://postgres@/postgres?host=/var/run/postgresql",
               "postgresql://postgres@127.0.0.1:5432/postgres")


def admin_url() -> tuple[str | None, str]:
    """A PostgreSQL URL that answers, or None and the reason in one line."""
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (pip install 'splitvault[postgres]')"
    configured = os.environ.get("SPLITVAULT_BENCH_POSTGRES")
    for url in [configured] if configured else list(_CANDIDATES):
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url, ""
        except psycopg.Error:
            continue
    return None, ("no PostgreSQL reachable (local socket or 127.0.0.1:5432 as postgres; "
                  "set SPLITVAULT_BENCH_POSTGRES)")


@contextmanager
def temporary_database(admin: str) -> Iterator[tuple[str, str]]:
    """A new empty database: (its URL, its name); dropped afterwards."""
    import psycopg

    name = f"splitvault_bench_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = admin.partition("?")
    url = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    try:
        yield url, name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _backends(database: str) -> list[int]:
    """PostgreSQL backend processes connected to ``database`` (by their titles)."""
    found = []
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, UnicodeDecodeError):
                continue
            if title.startswith("postgres:") and f" {database} " in title:
                found.append(int(entry.name))
    return found


def _backend_cpu(database: str) -> dict[int, float]:
    return {pid: cpu_of([pid]) for pid in _backends(database)}


def _one(admin: str, workers: int, clients_count: int, duration: float) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="splitvault-bench-pg-"))
    try:
        with (temporary_database(admin) as (url, name),
              serve(root, db=url, workers=workers) as server,
              clients(root, server.url, clients_count) as group):
            closed_loop(group, min(0.5, duration))  # warm: pools, caches
            server_before, db_before = server.cpu_seconds(), _backend_cpu(name)
            run = closed_loop(group, duration)
            server_cpu = server.cpu_seconds() - server_before
            # A backend the pool opened during the run counts from zero: all its CPU
            # was spent in the window.
            db_cpu = sum(cpu - db_before.get(pid, 0.0)
                         for pid, cpu in _backend_cpu(name).items())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    done = len(run.latencies)
    return {
        "workers": workers,
        "auth_per_s": run.per_s,
        **percentiles(run.latencies),
        "authorizations": done,
        "errors": len(run.errors),
        "server_cpu_ms_per_auth": round(server_cpu * 1e3 / done, 2) if done else None,
        "postgres_cpu_ms_per_auth": round(db_cpu * 1e3 / done, 2) if done else None,
    }


def run(*, quick: bool = False, duration: float = 5.0,
        clients_count: int = 32) -> dict[str, Any]:
    """Each worker count in turn; ``{"skipped": reason}`` without a PostgreSQL."""
    admin, why = admin_url()
    if admin is None:
        return {"skipped": why}
    if quick:
        duration, clients_count = min(duration, 1.0), min(clients_count, 8)
    runs = [_one(admin, workers, clients_count, duration) for workers in WORKERS]
    return {"clients": clients_count, "duration_s": duration, "cpus": os.cpu_count(),
            "runs": runs}


def render(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return f"PostgreSQL: skipped ({result['skipped']})"
    lines = [f"PostgreSQL over HTTP, {result['clients']} concurrent clients, TEST_ONLY KDF "
             f"(clients, server and database share {result['cpus']} cores)"]
    for r in result["runs"]:
        lines.append(
            f"  serve --workers {r['workers']}: {r['auth_per_s']:.1f} authorizations/s, "
            f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, {r['errors']} errors; CPU per "
            f"authorization: server {r['server_cpu_ms_per_auth']} ms, PostgreSQL "
            f"{r['postgres_cpu_ms_per_auth']} ms")
    return "\n".join(lines)
