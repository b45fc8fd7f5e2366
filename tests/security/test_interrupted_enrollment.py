"""Issue 9 item 7: an interrupted enrollment never leaves the server a share that no
one can delete. The device cancels, with the card's device key, every enrollment it
never saw finished; the server expires pending enrollments never finished."""

from __future__ import annotations

import pytest

from splitvault._attack import interrupted_enrollment
from splitvault._attack._harness import Lab
from support import held

pytestmark = pytest.mark.security




def test_lost_enroll_finish_reply_leaves_no_share_behind(lab: Lab) -> None:
    """The server committed, the reply and the first clean-up were lost: the device
    kept its pending row, and opened again it cancels the server's card."""
    held(interrupted_enrollment.lost_finish_reply(lab))


def test_crash_before_the_server_commits_is_cancelled_on_open(lab: Lab) -> None:
    """Power cut with the device's pending row written and the server's row pending."""
    held(interrupted_enrollment.crash_before_commit(lab))


def test_crash_after_the_server_commits_is_cancelled_on_open(lab: Lab) -> None:
    """Power cut after the server activated the card, before the device did."""
    held(interrupted_enrollment.crash_after_commit(lab))


def test_unfinished_enrollments_expire_on_the_server(lab: Lab) -> None:
    """A finish after the enrollment TTL is refused, and the sweep removes the row."""
    held(interrupted_enrollment.unfinished_expire(lab))
