"""Scenario 19, strangers flood enrollment: enroll_begin needs only a key the caller
just made, and each one used to leave a row for ten minutes, with a per-address rate
limit (1000/s) above what the server can serve.

- :func:`flood_from_one_address`: 30 enrollments from one address: the store keeps at
  most ``pending_per_origin`` unfinished ones for it (then ``RateLimited``), across
  every worker; the rows hold a MAC of the address, never the address.
- :func:`flood_from_many_addresses`: enrollments from ever new addresses stop at
  ``pending_total`` in all.
- :func:`rate_limit_engages`: the default per-address bucket refuses a burst that one
  address sends faster than a device ever does.
"""

from __future__ import annotations

import dataclasses
import secrets

from .. import _errors
from ..hazmat import RateLimiter
from ._harness import IN_PROCESS_ONLY, AttackResult, Deployment, Lab, Options, guarded, skipped
from .card_ids import enroll_begin

__all__ = ["flood_from_many_addresses", "flood_from_one_address", "rate_limit_engages",
           "run"]

HAD = "the network, many keys of his own, one or many addresses"
ADDRESS = "198.51.100.7"


def _flood(lab: Lab, addresses: list[str]) -> tuple[int, int]:
    """(accepted, refused as rate limited)."""
    if lab.server is None:
        raise RuntimeError("needs the in-process server")
    ok = limited = 0
    for address in addresses:
        try:
            lab.server.enroll_begin(enroll_begin(None, secrets.token_bytes(32)),
                                    origin=address)
            ok += 1
        except _errors.RateLimited:
            limited += 1
    return ok, limited


def flood_from_one_address(lab: Lab) -> AttackResult:
    name = "make the server store rows: enroll from one address"

    def attack() -> AttackResult:
        if lab.server is None:
            return skipped(name, HAD, IN_PROCESS_ONLY)
        cap = lab.server.profile.pending_per_origin
        ok, limited = _flood(lab, [ADDRESS] * (cap + 10))
        origins = [bytes(r[0]) for r in lab.server.inspector().query(
            "SELECT origin FROM cards WHERE state = 'pending'")]
        clear = any(ADDRESS.encode() in o for o in origins)
        held = ok == cap and limited == 10 and not clear and len(set(origins)) == 1
        return AttackResult(name, HAD, f"{ok} rows stored, {limited} refused "
                            f"(cap {cap}); address in clear: {clear}", held)

    return guarded(name, HAD, attack)


def flood_from_many_addresses(lab: Lab) -> AttackResult:
    name = "make the server store rows: enroll from many addresses"

    def attack() -> AttackResult:
        if lab.server is None:
            return skipped(name, HAD, IN_PROCESS_ONLY)
        total = 12
        small = dataclasses.replace(lab.server.profile, pending_total=total)
        lab.server._enrollment._profile = small  # a small total, to see it hold
        ok, limited = _flood(lab, [f"203.0.113.{i}" for i in range(total + 5)])
        pending = lab.server.store.pending_enrollments()
        held = ok == total and limited == 5 and pending == total
        return AttackResult(name, HAD, f"{ok} rows stored, {limited} refused "
                            f"(total cap {total})", held)

    return guarded(name, HAD, attack)


def rate_limit_engages(lab: Lab) -> AttackResult:
    name = "send requests from one address faster than any device"

    def attack() -> AttackResult:
        now = [0.0]
        limiter = RateLimiter(clock=lambda: now[0])  # the defaults serve runs with
        refused = sum(limiter.take(ADDRESS) > 0 for _ in range(1000))
        return AttackResult(name, HAD, f"{1000 - refused} of 1000 requests in one instant "
                            f"admitted (rate {limiter.rate:g}/s, burst {limiter.burst:g})",
                            refused >= 800)

    return guarded(name, HAD, attack)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack in (flood_from_one_address, flood_from_many_addresses, rate_limit_engages):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
