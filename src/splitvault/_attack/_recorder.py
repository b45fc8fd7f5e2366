"""The network attacker's seat: a :class:`Recorder` between one device and its server.

It implements :class:`~splitvault._protocol.ShareService`, so a ``Device`` talks through
it to an in-process ``ShareServer`` or to ``HttpShareService`` alike. It records every
request and reply, may rewrite requests and replies, and may run a hook before a method
(stall the clock before an authorization, say).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._protocol import (
    AuthorizeReply,
    AuthorizeRequest,
    CardStatusReply,
    CardStatusRequest,
    ChangePinBegin,
    ChangePinFinish,
    DeleteRequest,
    EnrollBegin,
    EnrollBeginReply,
    EnrollFinish,
    EvaluateReply,
    EvaluateRequest,
    ReenrollBegin,
    ReenrollFinish,
    ServerInfo,
    ShareService,
)

__all__ = ["Recorder"]


class Recorder:
    """A man in the middle between one device and its server: records every request and
    reply, may rewrite requests (``rewrite``) and replies (``rewrite_reply``), and may
    run a hook before a method (``before["authorize"]``: stall the clock, say)."""

    def __init__(self, inner: ShareService) -> None:
        self.inner = inner
        self.sent: list[object] = []
        self.replies: list[object] = []
        self.rewrite: Callable[[object], object] | None = None
        self.rewrite_reply: Callable[[object], object] | None = None
        self.before: dict[str, Callable[[], None]] = {}

    def _pass(self, name: str, message: object) -> Any:
        hook = self.before.get(name)
        if hook is not None:
            hook()
        if self.rewrite is not None and message is not None:
            message = self.rewrite(message)
        self.sent.append(message)
        method = getattr(self.inner, name)
        reply = method() if message is None else method(message)
        if self.rewrite_reply is not None and reply is not None:
            reply = self.rewrite_reply(reply)
        self.replies.append(reply)
        return reply

    def of(self, kind: type[Any]) -> list[Any]:
        """Every recorded request and reply of one message type, in order."""
        return [m for m in (*self.sent, *self.replies) if isinstance(m, kind)]

    def info(self) -> ServerInfo:
        reply: ServerInfo = self._pass("info", None)
        return reply

    def enroll_begin(self, request: EnrollBegin) -> EnrollBeginReply:
        reply: EnrollBeginReply = self._pass("enroll_begin", request)
        return reply

    def enroll_finish(self, request: EnrollFinish) -> None:
        self._pass("enroll_finish", request)

    def evaluate(self, request: EvaluateRequest) -> EvaluateReply:
        reply: EvaluateReply = self._pass("evaluate", request)
        return reply

    def authorize(self, request: AuthorizeRequest) -> AuthorizeReply:
        reply: AuthorizeReply = self._pass("authorize", request)
        return reply

    def change_pin_begin(self, request: ChangePinBegin) -> EvaluateReply:
        reply: EvaluateReply = self._pass("change_pin_begin", request)
        return reply

    def change_pin_finish(self, request: ChangePinFinish) -> None:
        self._pass("change_pin_finish", request)

    def delete(self, request: DeleteRequest) -> None:
        self._pass("delete", request)

    def card_status(self, request: CardStatusRequest) -> CardStatusReply:
        status: CardStatusReply = self._pass("card_status", request)
        return status

    def reenroll_begin(self, request: ReenrollBegin) -> EvaluateReply:
        reply: EvaluateReply = self._pass("reenroll_begin", request)
        return reply

    def reenroll_finish(self, request: ReenrollFinish) -> None:
        self._pass("reenroll_finish", request)
