"""Real server processes for the store's multi-process tests."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from pg_support import require_postgres, temporary_database
from splitvault.server import Kek

__all__ = ["Serve", "cli", "upgraded_postgres"]


class Serve:
    """A real ``splitvault serve`` on 127.0.0.1, any port; ``extra`` adds flags."""

    def __init__(self, db: str, kek: Path, log: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "splitvault.server._serve", "--db", db, "--kek-file",
             str(kek), "--port", "0", "--host", "127.0.0.1", "--rate-limit", "0", *extra],
            stdout=subprocess.PIPE, stderr=log.open("ab"), text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stdout or ()],
                         daemon=True).start()
        deadline = time.monotonic() + 30
        self.url = ""
        while not self.url:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if "listening on" in line:
                self.url = line.split()[-1]
        with httpx.Client(timeout=2) as client:
            while client.get(f"{self.url}/healthz").status_code != 200:
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``splitvault ARGS`` as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "splitvault", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False)


@contextmanager
def upgraded_postgres(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A fresh PostgreSQL database with the schema made by ``db upgrade``, and a key
    file; both gone afterwards. Skips (or fails under CI) without PostgreSQL."""
    require_postgres()
    kek = tmp_path / "kek.key"
    Kek.generate().write(kek)
    with temporary_database() as url:
        done = cli("db", "upgrade", "--db", url)
        assert done.returncode == 0, done.stderr
        yield url, kek
