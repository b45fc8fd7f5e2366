"""Issue 9 item 8: a bulk export of the server shows no purchase patterns: parameter
digests MAC the idempotency key too, wrapped results are padded to one size, and
audit times are whole minutes (MAC'd as stored, so the chain still verifies)."""

from __future__ import annotations

import pytest

from splitvault._attack import at_rest
from splitvault._attack._harness import Lab
from support import held

pytestmark = pytest.mark.security




def test_bulk_export_cannot_group_purchases(lab: Lab) -> None:
    """Two identical payments get unrelated digests; every result has one length; audit
    times are whole minutes and the chain verifies."""
    held(at_rest.export_shows_no_patterns(lab))
