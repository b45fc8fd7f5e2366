"""The errors of the threshold modules (``threshold``, ``threshold_secret``, ``dleq``).

Kept apart so the private field helpers can raise them without importing the public modules.
"""

from __future__ import annotations

__all__ = ["InvalidEvaluation", "ThresholdError"]


class ThresholdError(ValueError):
    """A caller mistake: a wrong length, a bad threshold, a duplicate or zero index, too few
    shares. Messages are fixed and never contain secret bytes."""


class InvalidEvaluation(Exception):
    """One or more realms returned an evaluation whose DLEQ proof does not verify.

    ``indices`` names them (their share indices), so the caller can report the faulty realms,
    drop them and combine the others; it must never turn this into "wrong PIN". Deliberately
    *not* an ``AuthenticationFailed``: a handler that maps those to a wrong PIN or to
    ``TamperedData`` must not swallow a faulty realm by accident.
    """

    def __init__(self, indices: tuple[int, ...]) -> None:
        self.indices = indices
        super().__init__(f"realm evaluation did not verify: share indices {list(indices)}")
