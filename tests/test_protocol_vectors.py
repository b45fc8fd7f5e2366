"""tests/vectors/protocol.json against the library, byte for byte (issue 13).

The file is what a port of the device (Kotlin, Swift) checks itself against, so each
section is replayed here through the library's own functions from the recorded inputs,
with the recorded draws served to ``secrets.token_bytes`` where the library draws its own
randomness; the script must regenerate the file exactly; and every must-fail row fails
with the error it names. The threshold glue's vectors are tests/vectors/threshold.json,
checked by tests/crypto/test_threshold.py; this file pins that file's SHA-256.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import secrets
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pysodium
import pytest
from argon2.low_level import ARGON2_VERSION

from splitvault import (
    Card,
    ConfigurationError,
    InvalidCard,
    KdfProfile,
    MalformedRequest,
    Pin,
    TamperedData,
    _protocol,
    _resplit,
    _wire,
)
from splitvault._resplit import open_refresh, seal_refresh
from splitvault.crypto import envelope, oprf, shares, signing
from splitvault.crypto.encoding import decode, encode, u64
from splitvault.crypto.errors import AuthenticationFailed
from splitvault.crypto.kdf import argon2id, hkdf
from splitvault.crypto.sealing import aead_encrypt, open_sealed, seal
from splitvault.hazmat import BlindedPin, derive_pin_seed
from splitvault.server import Kek, Keyring, _audit
from splitvault.server._ledger import Ledger
from splitvault.server._refresh import new_share
from splitvault.server._store import AuditRow

VECTORS = Path(__file__).resolve().parent / "vectors"
FILE = VECTORS / "protocol.json"
V = json.loads(FILE.read_text(encoding="utf-8"))

_spec = importlib.util.spec_from_file_location("make_protocol_vectors",
                                               VECTORS / "make_protocol_vectors.py")
assert _spec is not None and _spec.loader is not None
make_vectors: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_vectors)

KEYS = V["keys"]
CARD_ID = KEYS["card_id"]
SERVER_SECRET = bytes.fromhex(KEYS["server"]["secret"])
PIN_KEYS = {case["label"]: case for case in V["pin_key"]}
ENVELOPES = {row["label"]: row for row in V["envelopes"]}


def b(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)


@contextmanager
def replayed(draws: list[str]) -> Iterator[None]:
    """``secrets.token_bytes`` returns the recorded draws, in order, each of the length
    asked for; every draw must be used."""
    queue = [b(d) for d in draws]

    def token_bytes(n: int | None = None) -> bytes:
        assert queue, "the library drew more randomness than the vector records"
        out = queue.pop(0)
        assert len(out) == n, "the library drew a different number of bytes"
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(secrets, "token_bytes", token_bytes)
        yield
    assert not queue, "the library drew less randomness than the vector records"


def build(cls: type[Any], fields: dict[str, Any]) -> Any:
    """A message dataclass from a vector's fields (bytes fields are hex)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        value = fields[f.name]
        is_bytes = bytes in (typing.get_args(hints[f.name]) or (hints[f.name],))
        values[f.name] = b(value) if is_bytes and value is not None else value
    return cls(**values)


# --- the file itself --------------------------------------------------------------------


def test_file_is_what_the_script_writes() -> None:
    """Regenerating the vectors gives the committed file byte for byte."""
    assert make_vectors.render() == FILE.read_text(encoding="utf-8")


def test_threshold_vectors_are_referenced_not_copied() -> None:
    """The threshold section names threshold.json by its SHA-256 (regenerate this file
    when that one changes), and holds none of its cases."""
    ref = V["threshold"]
    assert (VECTORS / ref["generator"]).is_file()
    assert hashlib.sha256((VECTORS / ref["file"]).read_bytes()).hexdigest() == ref["sha256"]
    assert set(ref) == {"file", "generator", "sha256", "covers"}


def test_rng_and_keys() -> None:
    """Each key's secret is the first 32 bytes of its label's SHAKE-256 stream, and its
    public half and the card id follow from it."""
    rng = make_vectors.ShakeRng("key/device")
    assert rng(16) + rng(16) == hashlib.shake_256(b"key/device").digest(32)
    keys = [key for key in KEYS.values() if isinstance(key, dict)]
    assert len(keys) == 4
    for key in keys:
        if key["type"] == "ed25519":
            assert make_vectors.ShakeRng(key["from"])(32) == b(key["seed"])
            assert signing.public_key(b(key["seed"])) == b(key["public"])
        else:
            assert key["type"] == "x25519"
            assert make_vectors.ShakeRng(key["from"])(32) == b(key["secret"])
            assert envelope.public_key(b(key["secret"])) == b(key["public"])
    assert _protocol.card_id_for(b(KEYS["device"]["public"])) == KEYS["card_id"]
    assert make_vectors.ShakeRng("challenge/id")(16).hex() == KEYS["challenge_id"]
    assert make_vectors.ShakeRng("challenge/nonce")(32).hex() == KEYS["challenge_nonce"]


# --- encodings and bindings -------------------------------------------------------------


@pytest.mark.parametrize("case", V["encoding"], ids=lambda c: c["encoded"][:24])
def test_encoding(case: dict[str, Any]) -> None:
    """encode() gives the recorded bytes, and decode() reads the fields back."""
    fields = [b(f) for f in case["fields"]]
    encoded = encode(b(case["domain"]), *fields)
    assert encoded.hex() == case["encoded"]
    assert decode(b(case["domain"]), encoded, len(fields)) == fields


@pytest.mark.parametrize("case", V["card_id"], ids=lambda c: c["card_id"])
def test_card_id(case: dict[str, Any]) -> None:
    """card_id_for: 16 bytes of BLAKE2b over the encoded device key, as hex."""
    assert _protocol.card_id_for(b(case["device_key"])) == case["card_id"]


_AAD: dict[str, Callable[..., bytes]] = {
    "card_record_aad": _protocol.card_record_aad,
    "refresh_aad": _protocol.refresh_aad,
    "proof_aad": _protocol.proof_aad,
    "EnrollFinish.envelope_aad": _protocol.EnrollFinish.envelope_aad,
    "AuthorizeRequest.envelope_aad": _protocol.AuthorizeRequest.envelope_aad,
    "ReenrollFinish.envelope_aad": _protocol.ReenrollFinish.envelope_aad,
}


@pytest.mark.parametrize("case", V["aad"], ids=lambda c: f"{c['function']}{c['args'][:1]}")
def test_aad(case: dict[str, Any]) -> None:
    """Every associated-data builder gives the recorded bytes."""
    assert _AAD[case["function"]](*case["args"]).hex() == case["bytes"]


# --- signed messages --------------------------------------------------------------------


@pytest.mark.parametrize("row", V["messages"], ids=lambda r: r["name"])
def test_signed_bytes_and_signatures(row: dict[str, Any]) -> None:
    """signed_bytes() of the recorded message is the recorded bytes, and each signature
    is that key's (deterministic) Ed25519 signature of them: in the clear for the device
    and wallet keys, sealed to the server under proof_aad(kind) for a PIN key."""
    cls = getattr(_protocol, row["message"])
    message = build(cls, row["fields"])
    signed = message.signed_bytes(b(row["nonce"])) if "nonce" in row else message.signed_bytes()
    assert signed.hex() == row["signed_bytes"]
    assert set(row["signatures"]) == {
        f.name for f in dataclasses.fields(cls)
        if "signature" in f.name and getattr(message, f.name) is not None}
    for name, spec in row["signatures"].items():
        value = getattr(message, name)
        if "sealed" in spec:
            value = bytes(envelope.open_envelope(SERVER_SECRET, value,
                                                 _protocol.proof_aad(spec["sealed"], CARD_ID)))
            seed = b(PIN_KEYS[spec["key"]]["seed"])
        else:
            seed = b(KEYS[spec["key"]]["seed"])
        assert value == signing.sign(seed, signed)
        signing.verify(signing.public_key(seed), signed, value)


def test_every_signed_message_has_a_vector() -> None:
    """Each message class with signed_bytes() in _protocol has at least one row."""
    signed_classes = {name for name in _protocol.__all__
                      if hasattr(getattr(_protocol, name), "signed_bytes")}
    assert signed_classes == {row["message"] for row in V["messages"]}


# --- the PIN key ------------------------------------------------------------------------


@pytest.mark.parametrize("case", V["pin_key"], ids=lambda c: c["label"])
def test_pin_key(case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The device's own path (BlindedPin with the recorded blind, derive_pin_seed with
    TEST_ONLY) reproduces every step from the PIN to the verifier."""
    assert KdfProfile.TEST_ONLY.value == (case["argon2id"]["time_cost"],
                                          case["argon2id"]["memory_cost_kib"],
                                          case["argon2id"]["parallelism"])
    # BlindedPin draws its blind inside oprf.blind, from libsodium: serve the recorded one.
    assert make_vectors.scalar(case["label"] + "/blind").hex() == case["blind"]
    monkeypatch.setattr(pysodium, "crypto_core_ristretto255_scalar_random",
                        lambda: b(case["blind"]))
    with Pin.from_digits(case["pin"]) as pin, BlindedPin(case["card_id"], pin) as blinded:
        assert bytes(blinded._input).hex() == case["pin_input"]
        assert blinded.blinded.hex() == case["blinded"]
        evaluated = oprf.blind_evaluate(b(case["oprf_key"]), blinded.blinded)
        assert evaluated.hex() == case["evaluated"]
        output = blinded.finalize(evaluated)
    assert output.hex() == case["oprf_output"]
    k = case["argon2id"]
    assert k["version"] == ARGON2_VERSION == 0x13
    stretched = argon2id(output, b(k["salt"]), time_cost=k["time_cost"],
                         memory_cost_kib=k["memory_cost_kib"], parallelism=k["parallelism"],
                         length=k["length"])
    assert stretched.hex() == k["output"]
    kdf = case["hkdf"]
    assert kdf["ikm"] == k["output"] + case["device_secret"]
    assert hkdf(b(kdf["ikm"]), salt=None if kdf["salt"] is None else b(kdf["salt"]),
                info=b(kdf["info"]), length=kdf["length"],
                algorithm=kdf["hash"]).hex() == case["seed"]
    seed = derive_pin_seed(output, salt=b(k["salt"]), device_secret=b(case["device_secret"]),
                           card_id=case["card_id"], profile=KdfProfile.TEST_ONLY)
    assert seed.hex() == case["seed"]
    assert signing.public_key(seed).hex() == case["verifier"]


# --- envelopes, the card record, the shares ---------------------------------------------


@pytest.mark.parametrize("row", V["envelopes"], ids=lambda r: r["label"])
def test_envelope(row: dict[str, Any]) -> None:
    """seal_envelope with the recorded draws (ephemeral secret, nonce) gives the recorded
    envelope; the documented recipe (X25519, HKDF-SHA512 with salt eph || recipient,
    XChaCha20-Poly1305) gives it too; open_envelope returns the plaintext."""
    recipient = b(row["recipient_public"])
    assert envelope.public_key(b(row["recipient_secret"])) == recipient
    with replayed(row["draws"]):
        sealed = envelope.seal_envelope(recipient, b(row["plaintext"]), b(row["aad"]))
    assert sealed.hex() == row["envelope"]
    eph_secret, nonce = (b(d) for d in row["draws"])
    rng = make_vectors.ShakeRng(row["label"])
    assert (rng(32), rng(24)) == (eph_secret, nonce)
    assert envelope.public_key(eph_secret).hex() == row["ephemeral_public"]
    assert envelope.x25519(eph_secret, recipient).hex() == row["shared_secret"]
    assert row["hkdf_salt"] == row["ephemeral_public"] + row["recipient_public"]
    key = hkdf(b(row["shared_secret"]), salt=b(row["hkdf_salt"]), info=b(row["hkdf_info"]),
               length=32)
    assert key.hex() == row["key"]
    assert nonce.hex() == row["nonce"]
    recipe = b(row["ephemeral_public"]) + nonce + aead_encrypt(key, nonce, b(row["plaintext"]),
                                                               b(row["aad"]))
    assert recipe == sealed
    opened = envelope.open_envelope(b(row["recipient_secret"]), sealed, b(row["aad"]))
    assert opened.hex() == row["plaintext"]


@pytest.mark.parametrize("case", V["card_records"], ids=lambda c: c["label"])
def test_card_record(case: dict[str, Any]) -> None:
    """Card._to_record is the recorded canonical JSON, sealed with the recorded key and
    nonce under card_record_aad; _from_record and open_sealed take it back."""
    import datetime

    given = case["input"]
    card = Card.parse(given["pan"], given["expiry"], given["holder"],
                      today=datetime.date(2026, 1, 1))
    record = card._to_record()
    assert record.hex() == case["record"]
    assert record.decode("utf-8") == case["record_text"]
    assert make_vectors.ShakeRng(case["label"] + "/data-key")(32).hex() == case["data_key"]
    assert make_vectors.ShakeRng(case["label"] + "/nonce")(24).hex() == case["nonce"]
    assert _protocol.card_record_aad(CARD_ID).hex() == case["aad"]
    sealed = seal(b(case["data_key"]), record, b(case["aad"]), nonce=b(case["nonce"]))
    assert sealed.hex() == case["sealed"]
    assert open_sealed(b(case["data_key"]), sealed, b(case["aad"])) == record
    back = Card._from_record(b(case["record"]))
    assert (back.pan, back.expiry, back.holder) == (card.pan, card.expiry, card.holder)


@pytest.mark.parametrize("case", V["shares"], ids=lambda c: c["rng"])
def test_xor_shares(case: dict[str, Any]) -> None:
    """split takes the device share from its rng; the server share is key xor it."""
    rng = make_vectors.ShakeRng(case["rng"])
    device, server = shares.split(b(case["key"]), rng=rng)
    assert [device.hex()] == case["draws"]
    assert (device.hex(), server.hex()) == (case["device_share"], case["server_share"])
    assert shares.combine(device, server).hex() == case["key"]


# --- the server's formats ---------------------------------------------------------------


def kek_of(case: dict[str, Any]) -> Kek:
    return Kek(b(case["kid"]), bytearray(b(case["key"])))


@pytest.mark.parametrize("case", V["kek_wrap"], ids=lambda c: c["label"])
def test_kek_wrap(case: dict[str, Any]) -> None:
    """Kek.wrap with the recorded nonce: kid || nonce || XChaCha20-Poly1305 under the AAD
    encode("kek-wrap", kid, purpose, row); unwrap gives the secret back."""
    kek = kek_of(case)
    assert [make_vectors.ShakeRng(case["label"])(24).hex()] == case["draws"]
    with replayed(case["draws"]):
        wrapped = kek.wrap(case["purpose"], case["row"], b(case["secret"]))
    assert wrapped.hex() == case["wrapped"]
    assert Kek._aad(kek.kid, case["purpose"], case["row"]).hex() == case["aad"]
    nonce = b(case["draws"][0])
    assert wrapped == kek.kid + nonce + aead_encrypt(b(case["key"]), nonce, b(case["secret"]),
                                                     b(case["aad"]))
    assert kek.unwrap(case["purpose"], case["row"], wrapped).hex() == case["secret"]


def test_resplit() -> None:
    """new_share draws S_4 (recorded), R = S_3 xor S_4; seal_refresh with the refresh
    envelope's draws gives the recorded sealed R; D_4 = D_3 xor R; D_4 xor S_4 is still
    the data key and opens the card record; S_4 wrapped under the KEK as recorded."""
    case = V["resplit"]
    with replayed(case["draws"]):
        fresh, r = new_share(b(case["server_share"]))
    assert (fresh.hex(), r.hex()) == (case["server_share_next"], case["r"])
    assert shares.combine(b(case["device_share"]), r).hex() == case["device_share_next"]
    key = shares.combine(b(case["device_share_next"]), fresh)
    assert key.hex() == case["data_key"]
    assert open_sealed(key, b(case["sealed_record"]), _protocol.card_record_aad(CARD_ID))
    version_after = case["version"] + 1
    assert _protocol.refresh_aad(case["card_id"], version_after).hex() == case["aad"]
    row = ENVELOPES["envelope/refresh"]
    with replayed(row["draws"]):
        sealed = seal_refresh(b(case["refresh_key"]), r, b(case["token_next"]),
                              b(case["token"]), case["card_id"], version_after)
    assert sealed.hex() == case["sealed"] == row["envelope"]
    got_r, got_token = open_refresh(b(case["refresh_secret"]), sealed, case["card_id"],
                                    version_after, b(case["token"]))
    assert (got_r.hex(), got_token.hex()) == (case["r"], case["token_next"])
    with pytest.raises(AuthenticationFailed):  # not tagged under this version's token
        open_refresh(b(case["refresh_secret"]), sealed, case["card_id"], version_after,
                     b(case["token_next"]))
    proof = case["possession"]
    message = b(proof["message"])
    assert _resplit.epoch_mac(b(proof["epoch_token"]), message).hex() == proof["epoch_mac"]
    assert _resplit.possession_mac(b(proof["token"]), b(proof["dh"]),
                                   message).hex() == proof["version_mac"]
    assert _resplit.possession_mac(b(proof["token"]), None, message).hex() == proof[
        "version_mac_without_refresh_key"]
    wrap = case["wrapped_next"]
    with replayed(wrap["draws"]):
        wrapped = kek_of(V["kek_wrap"][0]).wrap(wrap["purpose"], wrap["row"], fresh)
    assert wrapped.hex() == wrap["wrapped"]


def test_audit_chain() -> None:
    """Each entry's MAC is keyed BLAKE2b-256 over encode("audit", prev MAC, seq, repr(at),
    event, card id, detail); verify() accepts the chain and reports its head."""
    audit = V["audit"]
    key = b(audit["key"])
    link = _audit.chain(key)
    rows = []
    for entry in audit["entries"]:
        assert repr(entry["at"]) == entry["at_text"]
        message = encode(_audit._D_AUDIT, b(entry["prev"]), u64(entry["seq"]),
                         entry["at_text"].encode(), entry["event"].encode(),
                         entry["card_id"].encode(), entry["detail"].encode())
        assert message.hex() == entry["message"]
        mac = link(b(entry["prev"]), entry["seq"], entry["at"], entry["event"],
                   entry["card_id"], entry["detail"])
        assert mac.hex() == entry["mac"]
        rows.append(AuditRow(entry["seq"], entry["at"], entry["event"], entry["card_id"],
                             entry["detail"], mac))
    report = _audit.verify(rows, key)
    assert (report.entries, report.head) == (len(rows), audit["head"])
    assert audit["entries"][0]["prev"] == audit["genesis"]


def test_ledger_digests() -> None:
    """The ledger's row key, parameter digest and payment references."""
    ledger_vectors = V["ledger"]
    ledger = Ledger(b(ledger_vectors["mac_key"]), Keyring.of(kek_of(V["kek_wrap"][0])))
    for case in ledger_vectors["cases"]:
        cid, idem = case["card_id"], case["idempotency_key"]
        assert ledger.key_digest(cid, idem).hex() == case["key_digest"]
        assert ledger.params_digest(cid, idem, case["amount"], case["currency"],
                                    case["merchant"]).hex() == case["params_digest"]
        for attempt, reference in case["references"].items():
            assert ledger.reference(cid, idem, int(attempt)) == reference


@pytest.mark.parametrize("case", V["wire"], ids=lambda c: c["type"])
def test_wire_json(case: dict[str, Any]) -> None:
    """_wire.dumps gives the recorded body, and loads reads it back to the same message."""
    message = build(getattr(_protocol, case["type"]), case["fields"])
    codec = getattr(_wire, case["message"])
    assert _wire.dumps(codec, message).decode("utf-8") == case["json"]
    assert _wire.loads(codec, case["json"].encode("utf-8")) == message


# --- rows that must fail ----------------------------------------------------------------


def _fail_open_envelope(row: dict[str, Any]) -> None:
    envelope.open_envelope(b(row["recipient_secret"]), b(row["envelope"]), b(row["aad"]))


def _fail_open_sealed(row: dict[str, Any]) -> None:
    open_sealed(b(row["key"]), b(row["sealed"]), b(row["aad"]))


def _fail_open_refresh(row: dict[str, Any]) -> None:
    open_refresh(b(row["secret"]), b(row["sealed"]), row["card_id"], row["version_after"],
                 None)


def _fail_kek_unwrap(row: dict[str, Any]) -> None:
    kek_of(row).unwrap(row["purpose"], row["row"], b(row["wrapped"]))


def _fail_verify(row: dict[str, Any]) -> None:
    signing.verify(b(row["public"]), b(row["message"]), b(row["signature"]))


def _fail_card_from_record(row: dict[str, Any]) -> None:
    Card._from_record(row["record_text"].encode("utf-8"))


def _fail_audit_verify(row: dict[str, Any]) -> None:
    rows = [AuditRow(e["seq"], e["at"], e["event"], e["card_id"], e["detail"], b(e["mac"]))
            for e in row["entries"]]
    _audit.verify(rows, b(row["key"]))


def _fail_wire_loads(row: dict[str, Any]) -> None:
    _wire.loads(getattr(_wire, row["message"]), row["json"].encode("utf-8"))


_OPERATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "open_envelope": _fail_open_envelope,
    "open_sealed": _fail_open_sealed,
    "open_refresh": _fail_open_refresh,
    "kek_unwrap": _fail_kek_unwrap,
    "verify": _fail_verify,
    "card_from_record": _fail_card_from_record,
    "audit_verify": _fail_audit_verify,
    "wire_loads": _fail_wire_loads,
}
_ERRORS: dict[str, type[Exception]] = {
    "AuthenticationFailed": AuthenticationFailed,
    "TamperedData": TamperedData,
    "ConfigurationError": ConfigurationError,
    "InvalidCard": InvalidCard,
    "MalformedRequest": MalformedRequest,
}


@pytest.mark.parametrize("row", V["must_fail"], ids=lambda r: f"{r['operation']}: {r['why']}")
def test_must_fail(row: dict[str, Any]) -> None:
    """Each row is refused with the error it names (and, if it names one, at that entry)."""
    name, _, detail = row["error"].partition(" ")
    with pytest.raises(_ERRORS[name]) as caught:
        _OPERATIONS[row["operation"]](row)
    assert detail in str(caught.value)


def test_must_fail_rows_differ_from_good_ones() -> None:
    """The must-fail envelopes and sealed values are the good ones with one change, so a
    row fails for its stated reason and not because its inputs were garbage."""
    good = ENVELOPES["envelope/enroll"]
    for row in (r for r in V["must_fail"] if r["operation"] == "open_envelope"):
        changed = [k for k in ("recipient_secret", "aad", "envelope") if row[k] != good[k]]
        assert len(changed) == 1, row["why"]
