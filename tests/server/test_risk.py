"""Fraud rules (issue 11): every rule type, windows at their edges, exact counts under
concurrency, malformed files, the dry run, and nothing of a purchase in clear."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

import splitvault as sv
from splitvault import SimulatedAcquirer
from splitvault.hazmat import DeviceStore
from splitvault.server._risk_history import Fact, History, decide, record

ISSUE_EXAMPLE = """
[velocity]            # payments per card in a sliding window
per_card = [{ window = "1m", max = 5 }, { window = "1h", max = 20 }]
[amount]              # minor units per currency
max_per_payment = { KRW = 2000000, USD = 200000 }
max_per_day_per_card = { KRW = 5000000 }
[merchants]
blocked = ["Casino Royale"]
"""
T0 = 1_900_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _rules(text: str) -> sv.RiskRules:
    return sv.RiskRules.from_text(text, source="test.toml")


# -- the file ---------------------------------------------------------------------------


def test_the_issue_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(ISSUE_EXAMPLE)
    rules = sv.RiskRules.from_toml(path)
    assert [(w.seconds, w.max) for w in rules.velocity] == [(60.0, 5), (3600.0, 20)]
    assert dict(rules.max_per_payment) == {"KRW": 2_000_000, "USD": 200_000}
    assert dict(rules.max_per_day_per_card) == {"KRW": 5_000_000}
    assert rules.blocked_merchants == frozenset({"casino royale"})
    assert _rules("") == sv.RiskRules.NONE and not sv.RiskRules.NONE.active
    assert sv.RiskRules.DEFAULT.active and sv.RiskRules.DEFAULT.counting


@pytest.mark.parametrize(("text", "problem"), [
    ("[velocity\n", "not valid TOML"),
    ("[speed]\n", "[speed]: unknown section"),
    ("[velocity]\nper_crad = []\n", "[velocity] per_crad: unknown key"),
    ('[velocity]\nper_card = { window = "1m", max = 5 }\n', "must be a list"),
    ('[velocity]\nper_card = [{ window = "5 min", max = 5 }]\n',
     "per_card[0]: window must be like 30s, 5m, 1h or 1d, got '5 min'"),
    ('[velocity]\nper_card = [{ window = "0s", max = 5 }]\n', "more than 0"),
    ('[velocity]\nper_card = [{ window = "31d", max = 5 }]\n', "at most 30d"),
    ('[velocity]\nper_card = [{ window = "1m", max = true }]\n', "max must be a whole"),
    ('[velocity]\nper_card = [{ window = "1m", max = 0 }]\n', "max must be a whole"),
    ('[velocity]\nper_card = [{ window = "1m" }]\n', "exactly those keys"),
    ("[amount]\nmax_per_payment = { KRWW = 5 }\n", "max_per_payment KRWW: not an ISO 4217"),
    ("[amount]\nmax_per_payment = { KRW = -5 }\n", "KRW: must be a positive whole"),
    ("[amount]\nmax_per_day_per_card = { USD = 1.5 }\n", "USD: must be a positive whole"),
    ("[merchants]\nblocked = [\"\"]\n", "[merchants] blocked: must be a list of merchant"),
    ('[devices]\nnew_burst = { window = "1d", max = "3" }\n', "[devices] new_burst: max"),
])
def test_a_malformed_file_names_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(sv.ConfigurationError) as err:
        sv.RiskRules.from_toml(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(sv.ConfigurationError, match="cannot read the file"):
        sv.RiskRules.from_toml(tmp_path / "missing.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(sv.ConfigurationError, match="cannot read the file"):
        sv.RiskRules.from_toml(tmp_path / "bin.toml")


# -- each rule, at its edges (pure: times in milliseconds) -------------------------------

M1, M2, M3 = b"m1......", b"m2......", b"m3......"
DEV, DEV2 = b"device-1", b"device-2"


def _fact(at_s: float, amount: int = 100, merchant: bytes = M1, device: bytes = DEV,
          currency: str = "KRW") -> Fact:
    return Fact(round(at_s * 1000), amount, currency, merchant, device)


def _replay(rules: sv.RiskRules, facts: list[Fact]) -> list[str | None]:
    """Each fact's decision; those that pass are recorded, as the server does."""
    history, out = History(), []
    for fact in facts:
        reason = decide(rules, frozenset(), history, fact)
        if reason is None:
            history = record(rules, history, fact)
        out.append(reason)
    return out


def test_velocity_window_edges() -> None:
    """Two a minute: the third is declined a millisecond before the first payment's
    minute is over, and allowed at exactly one minute."""
    rules = _rules('[velocity]\nper_card = [{ window = "1m", max = 2 }]\n')
    assert _replay(rules, [_fact(0), _fact(1), _fact(59.999)])[2] == \
        "risk: more than 2 payments per 1m"
    assert _replay(rules, [_fact(0), _fact(1), _fact(60)]) == [None, None, None]


def test_amount_per_payment_edge() -> None:
    rules = _rules("[amount]\nmax_per_payment = { KRW = 1000 }\n")
    assert _replay(rules, [_fact(0, 1000), _fact(1, 1001), _fact(2, 10**9, currency="USD")]
                   ) == [None, "risk: amount over the per-payment limit", None]


def test_daily_amount_sliding_24_hours() -> None:
    rules = _rules("[amount]\nmax_per_day_per_card = { KRW = 1000 }\n")
    assert _replay(rules, [_fact(0, 600), _fact(10, 400), _fact(20, 1)])[2] == \
        "risk: over the daily amount limit"
    # The first payment leaves the window at exactly 24 hours, not before.
    assert _replay(rules, [_fact(0, 600), _fact(10, 400), _fact(86_399.999, 1)])[2] is not None
    assert _replay(rules, [_fact(0, 600), _fact(10, 400), _fact(86_400, 600)])[2] is None
    # Other currencies do not add up.
    assert _replay(rules, [_fact(0, 1000), _fact(1, 5, currency="USD")]) == [None, None]


def test_blocked_merchant() -> None:
    rules = _rules('[merchants]\nblocked = ["Casino Royale"]\n')
    assert decide(rules, frozenset({M2}), History(), _fact(0, merchant=M2)) == \
        "risk: merchant blocked"
    assert decide(rules, frozenset({M2}), History(), _fact(0, merchant=M1)) is None


def test_new_merchant_burst() -> None:
    """Two new merchants an hour: a third new one is declined, a known one is not, and
    an hour after the first new one a new one passes again."""
    rules = _rules('[merchants]\nnew_burst = { window = "1h", max = 2 }\n')
    m4 = b"m4......"
    assert _replay(rules, [_fact(0, merchant=M1), _fact(1, merchant=M2),
                           _fact(2, merchant=M3), _fact(3, merchant=M1)]) == [
        None, None, "risk: more than 2 new merchants per 1h", None]
    assert _replay(rules, [_fact(0, merchant=M1), _fact(1, merchant=M2),
                           _fact(3600, merchant=m4)])[2] is None


def test_new_device_burst() -> None:
    """Two payments in the first day of a device new to the card; a change of device
    starts a new window; after a day the device is no longer new."""
    rules = _rules('[devices]\nnew_burst = { window = "1d", max = 2 }\n')
    assert _replay(rules, [_fact(0), _fact(1), _fact(2)])[2] == \
        "risk: more than 2 payments per 1d from a new device"
    assert _replay(rules, [_fact(0), _fact(1), _fact(86_400)])[2] is None
    assert _replay(rules, [_fact(0), _fact(86_400), _fact(86_401, device=DEV2),
                           _fact(86_402, device=DEV2), _fact(86_403, device=DEV2)]) == [
        None, None, None, None, "risk: more than 2 payments per 1d from a new device"]


def test_history_round_trips_padded() -> None:
    rules = sv.RiskRules.DEFAULT
    history = History()
    for i in range(40):
        history = record(rules, history, _fact(i * 100, merchant=bytes([i]) * 8))
    raw = history.dump()
    assert History.load(raw) == history
    assert len(raw) & (len(raw) - 1) == 0  # a power of two: no exact count shows
    with pytest.raises(sv.TamperedData):
        History.load(raw[:-1] + b"\x01")


# -- through the server ------------------------------------------------------------------


def _open(tmp_path: Path, rules: sv.RiskRules, clock: Clock,
          acquirer: SimulatedAcquirer | None = None) -> tuple[sv.ShareServer, sv.Device]:
    server = sv.ShareServer.open(tmp_path / "s.db", clock=clock, risk=rules,
                                 acquirer=acquirer or SimulatedAcquirer())
    device = sv.Device(DeviceStore(tmp_path / "d.db"), server, kdf=sv.KdfProfile.TEST_ONLY,
                       clock=clock)
    return server, device


def _pay(device: sv.Device, card_id: str, pin: sv.Pin, key: str, amount: int = 100,
         merchant: str = "Gift Shop") -> sv.Authorization:
    return device.authorize(card_id, pin, amount=amount, currency="KRW", merchant=merchant,
                            idempotency_key=key)


def test_a_rule_declines_before_the_acquirer_recorded_and_audited(
        tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """The third payment of a minute is declined with a ``risk:`` reason; the acquirer
    is not called; a retry of that key gets the same decline (recorded, not decided
    again) even once the window has passed; a new key then pays."""
    clock = Clock()
    acquirer = SimulatedAcquirer()
    server, device = _open(tmp_path, _rules('[velocity]\nper_card = [{ window = "1m", '
                                            'max = 2 }]\n'), clock, acquirer)
    card_id = device.enroll(card, pin)
    assert _pay(device, card_id, pin, "a").approved
    assert _pay(device, card_id, pin, "b").approved
    third = _pay(device, card_id, pin, "c")
    assert not third.approved and third.decline_reason == "risk: more than 2 payments per 1m"
    assert len(acquirer.calls) == 2
    clock.now += 61
    assert _pay(device, card_id, pin, "c") == third
    assert server.payment_state(card_id, "c") == "declined"
    assert _pay(device, card_id, pin, "d").approved and len(acquirer.calls) == 3
    events = [e for e in server.audit_entries() if e["event"] == "risk_declined"]
    assert len(events) == 1 and events[0]["card_id"] == card_id
    assert events[0]["detail"] == {"rule": "risk: more than 2 payments per 1m"}
    server.close()


def test_blocked_merchant_and_amount_through_the_server(
        tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    clock = Clock()
    acquirer = SimulatedAcquirer(limit=10**9)
    server, device = _open(tmp_path, _rules(ISSUE_EXAMPLE), clock, acquirer)
    card_id = device.enroll(card, pin)
    blocked = _pay(device, card_id, pin, "a", merchant="  casino   ROYALE ")
    assert blocked.decline_reason == "risk: merchant blocked"
    big = _pay(device, card_id, pin, "b", amount=2_000_001)
    assert big.decline_reason == "risk: amount over the per-payment limit"
    assert _pay(device, card_id, pin, "c", amount=2_000_000).approved
    assert _pay(device, card_id, pin, "d", amount=2_000_000).approved
    daily = _pay(device, card_id, pin, "e", amount=1_000_001)
    assert daily.decline_reason == "risk: over the daily amount limit"
    assert len(acquirer.calls) == 2
    server.close()


def test_six_simultaneous_payments_against_five_a_minute(
        tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """Exactly five reach the acquirer: the check and the count are one transaction."""
    clock = Clock()
    acquirer = SimulatedAcquirer()
    server, device = _open(tmp_path, _rules('[velocity]\nper_card = [{ window = "1m", '
                                            'max = 5 }]\n'), clock, acquirer)
    card_id = device.enroll(card, pin)
    barrier = threading.Barrier(6)
    results: list[sv.Authorization] = []
    lock = threading.Lock()

    def go(i: int) -> None:
        barrier.wait()
        paid = _pay(device, card_id, pin, f"order-{i}")
        with lock:
            results.append(paid)
    threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(acquirer.calls) == 5
    assert sorted(r.approved for r in results) == [False] + [True] * 5
    assert [r.decline_reason for r in results if not r.approved] == [
        "risk: more than 5 payments per 1m"]
    server.close()


def test_no_rules_no_history(tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """A server given no rules keeps no history at all."""
    server, device = _open(tmp_path, sv.RiskRules.NONE, Clock())
    card_id = device.enroll(card, pin)
    assert _pay(device, card_id, pin, "a").approved
    assert server.store.risk_histories() == []
    server.close()


def test_history_holds_no_purchase_in_clear(tmp_path: Path, card: sv.Card,
                                            pin: sv.Pin) -> None:
    """The risk table shows no card id, amount, merchant or time: one row per card,
    keyed by a MAC, wrapped whole; deleted with the card."""
    server, device = _open(tmp_path, sv.RiskRules.DEFAULT, Clock())
    card_id = device.enroll(card, pin)
    for i in range(3):
        _pay(device, card_id, pin, f"k{i}", amount=98765, merchant="Hanbit Books")
    server.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    rows = conn.execute("SELECT * FROM card_risk").fetchall()
    conn.close()
    assert len(rows) == 1 and len(rows[0]) == 2
    row_key, blob = rows[0]
    assert card_id.encode() not in row_key + blob and bytes.fromhex(card_id) not in blob
    assert b"Hanbit" not in blob and b"98765" not in blob
    assert (98765).to_bytes(8, "big") not in blob  # the wrapped plaintext's encoding
    server, device = _open(tmp_path, sv.RiskRules.DEFAULT, Clock())
    device.delete(card_id)
    assert server.store.risk_histories() == []
    server.close()


def test_dry_run_replays_the_history(tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """Paid under loose rules, replayed under strict ones: the payments they would have
    declined, in order, with nothing changed."""
    clock = Clock()
    server, device = _open(tmp_path, sv.RiskRules.DEFAULT, clock)
    card_id = device.enroll(card, pin)
    for i in range(4):
        _pay(device, card_id, pin, f"k{i}", amount=500, merchant="Casino Royale")
        clock.now += 10
    strict = _rules('[velocity]\nper_card = [{ window = "1m", max = 3 }]\n')
    found = server.risk_dry_run(strict)
    assert [(d.amount, d.currency, d.reason) for d in found] == [
        (500, "KRW", "risk: more than 3 payments per 1m")]
    assert found[0].at.timestamp() == T0 + 30
    blocked = server.risk_dry_run(_rules('[merchants]\nblocked = ["CASINO royale"]\n'))
    assert len(blocked) == 4 and {d.reason for d in blocked} == {"risk: merchant blocked"}
    assert server.risk_dry_run(sv.RiskRules.NONE) == []
    assert len(server.store.risk_histories()) == 1
    server.close()
