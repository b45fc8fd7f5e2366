"""The simulated acquirer's books on disk: an append-only file of JSON lines.

A real acquirer's books live on its side and survive anything that happens to the
payment server. ``SimulatedAcquirer(books=path)`` gets the same from this file, so a
``splitvault serve`` killed with SIGKILL, restarted, and an operator's ``splitvault
reconcile`` all see one set of books (``--simulated-books``).

Each booking (a charge, a decline, a reversal) is one line, written and ``fsync``'d
before the acquirer answers: an answer that left the acquirer is in the books. Every
reader and writer holds an exclusive ``flock`` on the file while it catches up with
lines other processes appended and appends its own, so several processes (``serve
--workers N``, ``reconcile``) book as one acquirer. A last line without its newline is
a write its process did not finish (killed mid-write): its caller never got an answer,
so the booking never happened, and the line is cut off. A complete line that does not
parse is damage, refused with ``ConfigurationError``.

The file holds references, amounts, currencies, approval codes and decline reasons:
never a card number (it is created mode 0600 all the same). POSIX only (``fcntl``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError

__all__ = ["BooksFile"]

_OPS = frozenset({"charge", "decline", "reverse"})


class BooksFile:
    """One books file. :meth:`held` locks it and gives the lines appended since this
    object last read; :meth:`append` (only while held) writes one durably."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._offset = 0
        self._fd: int | None = None
        try:
            import fcntl  # noqa: F401  (POSIX only: say so now, not at the first charge)
        except ImportError:  # pragma: no cover (Windows)
            raise ConfigurationError("simulated books need a POSIX system (flock)") from None
        existed = self.path.exists()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot open the simulated books {self.path}: {exc.strerror}") from None
        os.close(fd)
        if not existed:
            _fsync_dir(self.path.parent)  # the file itself survives a crash too

    @contextmanager
    def held(self) -> Iterator[list[dict[str, Any]]]:
        """Hold the file's lock; yields the bookings appended since the last read."""
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by close, and by the kernel on kill
            self._fd = fd
            yield self._catch_up(fd)
        finally:
            self._fd = None
            os.close(fd)

    def append(self, booking: dict[str, Any]) -> None:
        """Write one booking and ``fsync`` it; only inside :meth:`held`."""
        if self._fd is None:
            raise RuntimeError("BooksFile.append outside held()")
        line = json.dumps(booking, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        view = memoryview(line)
        while view:
            written = os.pwrite(self._fd, view, self._offset)
            self._offset += written
            view = view[written:]
        os.fsync(self._fd)

    def _catch_up(self, fd: int) -> list[dict[str, Any]]:
        size = os.fstat(fd).st_size
        if size < self._offset:
            raise ConfigurationError(f"the simulated books {self.path} were truncated")
        data = os.pread(fd, size - self._offset, self._offset) if size > self._offset \
            else b""
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            # Its writer died before finishing the line (we hold the lock, so nobody is
            # writing now): that call never answered, so the booking never happened.
            os.ftruncate(fd, self._offset + complete)
            os.fsync(fd)
        found = []
        start_line = self._offset
        for raw in data[:complete].splitlines():
            found.append(self._parse(raw, start_line))
            start_line += len(raw) + 1
        self._offset += complete
        return found

    def _parse(self, raw: bytes, at: int) -> dict[str, Any]:
        try:
            booking = json.loads(raw)
        except ValueError:
            booking = None
        if not (isinstance(booking, dict) and booking.get("op") in _OPS
                and isinstance(booking.get("ref"), str)):
            raise ConfigurationError(
                f"the simulated books {self.path} are damaged at byte {at}")
        return booking


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the file's own fsync stands
    finally:
        os.close(fd)
