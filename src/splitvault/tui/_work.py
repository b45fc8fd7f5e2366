"""Slow work off the UI thread: Argon2id and the server round trips run in a thread
worker, and come back as an ``Outcome`` the screen handles in ``on_worker_state_changed``.

A vault error is an expected answer (wrong PIN, locked card, server down), so it is
caught in the thread and handed back as data, never left to escape as a worker
failure (which Textual would treat as a crash).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

from textual.dom import DOMNode
from textual.worker import Worker, WorkerState

from .._errors import VaultError

__all__ = ["GROUP", "Outcome", "finished", "start"]

T = TypeVar("T")

GROUP = "vault"
"""The worker group of every call into the vault; the app is busy while one runs."""


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a job returned, or the error it raised (exactly one of them is set)."""

    value: T | None = None
    error: Exception | None = None


def _attempt(job: Callable[[], T]) -> Outcome[T]:
    try:
        return Outcome(value=job())
    except (VaultError, OSError, sqlite3.Error) as exc:
        # OSError and sqlite3.Error: a full disk or a vanished data folder is worth a
        # message on screen, not a traceback in the visitor's terminal.
        return Outcome(error=exc)


def start(node: DOMNode, name: str, job: Callable[[], T]) -> Worker[Outcome[T]]:
    """Run ``job`` in a thread on behalf of ``node`` (a screen), which gets
    ``Worker.StateChanged`` when it is done."""
    return node.run_worker(partial(_attempt, job), name=name, group=GROUP, thread=True,
                           exit_on_error=True)


def finished(event: Worker.StateChanged) -> tuple[str, Outcome[Any]] | None:
    """``(name, outcome)`` if the event is a vault job that just completed."""
    worker = event.worker
    if worker.group != GROUP or event.state != WorkerState.SUCCESS:
        return None
    outcome = worker.result
    if not isinstance(outcome, Outcome):
        return None
    return worker.name, outcome
