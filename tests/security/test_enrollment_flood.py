"""Issue 9 item 4: the rate limit engages, and strangers cannot make the server store
rows without bound (caps on unfinished enrollments, per address and in total, held
in the store)."""

from __future__ import annotations

import pytest

from splitvault._attack import enrollment_flood
from splitvault._attack._harness import Lab
from support import held

pytestmark = pytest.mark.security




def test_one_address_gets_at_most_its_cap_of_pending_enrollments(lab: Lab) -> None:
    """30 enrollments from one address: 20 rows, then RateLimited; no address stored."""
    held(enrollment_flood.flood_from_one_address(lab))


def test_pending_enrollments_are_capped_in_total(lab: Lab) -> None:
    """From ever new addresses, the total cap holds."""
    held(enrollment_flood.flood_from_many_addresses(lab))


def test_the_default_rate_limit_engages(lab: Lab) -> None:
    """A burst of 1000 requests from one address: the default bucket refuses most."""
    held(enrollment_flood.rate_limit_engages(lab))
