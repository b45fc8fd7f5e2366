"""tests/vectors/protocol.json against the library, byte for byte (issue 13).

The file is what a port of the device (Kotlin, Swift) checks itself against, so each
section is replayed here through the library's own functions from the recorded inputs,
with the recorded draws served to ``secrets.token_bytes`` where the library draws its own
randomness; the script must regenerate the file exactly; and every must-fail row fails
with the error it names. The realms section (a 2-of-3 card from enrollment through one
re-split) is replayed the same way, each message rebuilt from its recorded fields and each
seal, MAC and commitment recomputed. The threshold glue's vectors are tests/vectors/threshold.json,
checked by tests/crypto/test_threshold.py; this file pins that file's SHA-256.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.util
import itertools
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
    _realm_api,
    _realm_protocol,
    _resplit,
    _wire,
)
from splitvault._authorization import Authorization
from splitvault._realm_protocol import (
    D_SHARE_COMMITMENT,
    GatewayAuthorize,
    GatewayReply,
    RealmCatchUp,
    RealmCommitment,
    RealmDelta,
    RealmEvaluate,
    RealmMember,
    RealmRegister,
    RealmRelease,
    RealmShare,
    gateway_envelope_aad,
    register_aad,
    release_proof_aad,
    share_aad,
    share_commitment,
)
from splitvault._realm_refresh import (
    delta_key,
    open_delta,
    open_device_refresh,
    seal_delta,
    seal_device_refresh,
)
from splitvault._resplit import open_refresh, seal_refresh
from splitvault.crypto import dleq, envelope, oprf, shares, signing, threshold
from splitvault.crypto.encoding import decode, encode, u64
from splitvault.crypto.errors import AuthenticationFailed, DecodeError
from splitvault.crypto.kdf import argon2id, hkdf
from splitvault.crypto.sealing import aead_encrypt, open_sealed, seal
from splitvault.crypto.threshold_secret import (
    deal_refresh,
    recover_data_key,
    refresh_device_part,
    refresh_share,
    split_data_key,
)
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


@pytest.mark.parametrize("case", [*V["pin_key"], V["realms"]["pin_key"]],
                         ids=lambda c: c["label"])
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


# --- realms (t-of-n) --------------------------------------------------------------------

R = V["realms"]
REALM_SECRETS = {r["index"]: b(r["secret"]) for r in R["keys"]["realms"]}
REALM_KEYS = {r["index"]: b(r["public"]) for r in R["keys"]["realms"]}
GATEWAY_SECRET = b(R["keys"]["gateway"]["secret"])
GATEWAY_KEY = b(R["keys"]["gateway"]["public"])
DEVICE_SEED = b(KEYS["device"]["seed"])
SIGMAS = {s["index"]: b(s["value"]) for s in R["data_key"]["realm_shares"]}
KEY_SHARES = {s["index"]: b(s["value"]) for s in R["oprf_key"]["key_shares"]}


class Recording:
    """A label's SHAKE-256 stream as the library's ``rng`` argument, keeping its draws."""

    def __init__(self, label: str) -> None:
        self.rng = make_vectors.ShakeRng(label)
        self.draws: list[str] = []

    def __call__(self, n: int) -> bytes:
        out: bytes = self.rng(n)
        self.draws.append(out.hex())
        return out


def share_list(rows: list[dict[str, Any]]) -> list[threshold.Share]:
    return [threshold.Share(r["index"], bytearray(b(r["value"]))) for r in rows]


def realm_delta_of(f: dict[str, Any]) -> RealmDelta:
    return RealmDelta(b(f["realm_key"]), f["version"], b(f["gateway_key"]), b(f["sealed"]))


def realm_evaluate_of(f: dict[str, Any]) -> RealmEvaluate:
    return RealmEvaluate(f["card_id"], b(f["nonce"]), f["timestamp"], b(f["blinded"]),
                         b(f["signature"]), f["share_version"],
                         tuple(realm_delta_of(d) for d in f["deltas"]), b(f["possession"]))


def gateway_authorize_of(f: dict[str, Any]) -> GatewayAuthorize:
    return GatewayAuthorize(
        f["card_id"], b(f["device_key"]), f["amount"], f["currency"], f["merchant"],
        f["idempotency_key"], b(f["envelope"]),
        tuple(RealmShare(s["index"], b(s["realm_key"]), b(s["sealed"]), b(s["commitment"]))
              for s in f["shares"]),
        b(f["signature"]), f["share_version"], b(f["refresh_key"]),
        tuple(RealmMember(m["index"], b(m["realm_key"])) for m in f["members"]),
        b(f["nonce"]), f["timestamp"], f["share_floor"])


def gateway_reply_of(f: dict[str, Any]) -> GatewayReply:
    a = dict(f["authorization"])
    a["timestamp"] = datetime.datetime.fromisoformat(a["timestamp"])
    return GatewayReply(Authorization(**a), f["share_version"], b(f["refresh"]),
                        tuple(realm_delta_of(d) for d in f["deltas"]),
                        tuple(RealmCommitment(b(c["realm_key"]), b(c["commitment"]))
                              for c in f["commitments"]))


def check_device_signature(row: dict[str, Any], signed: bytes) -> None:
    """The row's one signature is the device key's over ``signed``."""
    assert signed.hex() == row["signed_bytes"]
    assert row["signatures"] == {"signature": {"key": "device"}}
    signature = b(row["fields"]["signature"])
    assert signature == signing.sign(DEVICE_SEED, signed)
    signing.verify(b(KEYS["device"]["public"]), signed, signature)


def test_realm_keys() -> None:
    """2 of 3; each realm's, the gateway's and the payment's refresh X25519 key is the
    first 32 bytes of its label's stream; the card is the story's."""
    assert (R["threshold"], R["realms"]) == (2, 3)
    assert (R["card_id"], R["device_key"]) == (CARD_ID, KEYS["device"]["public"])
    keys = [*R["keys"]["realms"], R["keys"]["gateway"], R["keys"]["refresh"]]
    assert [r["index"] for r in R["keys"]["realms"]] == [1, 2, 3]
    for key in keys:
        assert key["type"] == "x25519"
        assert make_vectors.ShakeRng(key["from"])(32) == b(key["secret"])
        assert envelope.public_key(b(key["secret"])) == b(key["public"])


def test_realm_oprf_key_split() -> None:
    """The dealt OPRF key is a scalar from its label; split_key with the recorded rng
    gives the recorded key shares and draws, each with its public share k_i * G."""
    case = R["oprf_key"]
    assert make_vectors.scalar(case["from"]).hex() == case["key"]
    rng = Recording(case["rng"])
    got = threshold.split_key(b(case["key"]), R["threshold"], R["realms"], rng=rng)
    assert rng.draws == case["draws"]
    assert [{"index": s.index, "value": s.value.hex(),
             "public_share": threshold.public_key_share(s).hex()} for s in got] == case[
        "key_shares"]
    assert threshold.recover(got[1:], R["threshold"]).hex() == case["key"]
    assert R["pin_key"]["oprf_key"] == case["key"]


def test_realm_data_key_split() -> None:
    """split_data_key with the recorded rng: D, then Sigma's shares; dec(D + Sigma) from
    any two of them is the data key, which opens the card record."""
    case = R["data_key"]
    rng = Recording(case["rng"])
    part, sigmas = split_data_key(b(case["key"]), R["threshold"], R["realms"], rng=rng)
    assert rng.draws == case["draws"]
    assert part.hex() == case["device_part"]
    assert [{"index": s.index, "value": s.value.hex()} for s in sigmas] == case["realm_shares"]
    for pair in itertools.combinations(sigmas, R["threshold"]):
        assert recover_data_key(part, list(pair), R["threshold"]).hex() == case["key"]
    assert case["aad"] == _protocol.card_record_aad(CARD_ID).hex()
    assert open_sealed(b(case["key"]), b(case["sealed_record"]), b(case["aad"]))
    assert make_vectors.ShakeRng(R["token_0"]["from"])(32).hex() == R["token_0"]["token"]


@pytest.mark.parametrize("row", R["registrations"], ids=lambda r: f"realm {r['realm']}")
def test_realm_registration(row: dict[str, Any]) -> None:
    """k_i || Sigma_i || verifier || T_0 sealed to the realm under register_aad; the
    RealmRegister's signed bytes over the realm's key and the device's signature; the
    device's commitment to Sigma_i."""
    i, realm_key = row["realm"], REALM_KEYS[row["realm"]]
    assert row["realm_key"] == realm_key.hex()
    plain = (KEY_SHARES[i] + SIGMAS[i] + b(R["pin_key"]["verifier"])
             + b(R["token_0"]["token"]))
    assert plain.hex() == row["plaintext"]
    assert register_aad(CARD_ID, realm_key).hex() == row["aad"]
    env = ENVELOPES[row["envelope"]]
    assert (env["recipient_public"], env["aad"], env["plaintext"]) == (
        realm_key.hex(), row["aad"], row["plaintext"])
    request = build(RealmRegister, row["fields"])
    assert request.envelope.hex() == env["envelope"]
    check_device_signature(row, request.signed_bytes(realm_key))
    opened = envelope.open_envelope(REALM_SECRETS[i], request.envelope, b(row["aad"]))
    assert bytes(opened) == plain
    assert share_commitment(CARD_ID, realm_key, SIGMAS[i]).hex() == row["commitment"]


@pytest.mark.parametrize("case", R["evaluations"], ids=lambda c: f"realm {c['request']['realm']}")
def test_realm_evaluation(case: dict[str, Any]) -> None:
    """RealmEvaluate at version 0 (no deltas): signed bytes over the realm's key, the
    device's signature, the possession MAC under T_0; the realm's k_i * B with its DLEQ
    proof from the recorded rng, which verifies against k_i * G."""
    row = case["request"]
    i, realm_key = row["realm"], REALM_KEYS[row["realm"]]
    request = realm_evaluate_of(row["fields"])
    assert (request.share_version, request.deltas) == (0, ())
    assert request.blinded.hex() == case["blinded"] == R["pin_key"]["blinded"]
    signed = request.signed_bytes(realm_key)
    check_device_signature(row, signed)
    proof = row["possession"]
    assert (proof["token"], proof["message"]) == (R["token_0"]["token"], signed.hex())
    assert _resplit.possession_mac(b(proof["token"]), None, signed) == request.possession
    assert request.possession.hex() == proof["mac"]
    assert case["key_share"] == KEY_SHARES[i].hex()
    rng = Recording(case["proof"]["rng"])
    got = threshold.evaluate(threshold.Share(i, bytearray(KEY_SHARES[i])), request.blinded,
                             rng=rng)
    assert rng.draws == case["proof"]["draws"]
    assert (got.element.hex(), got.proof.hex()) == (case["proof"]["evaluated"],
                                                     case["proof"]["proof"])
    assert dleq.verify_proof(b(case["public_share"]), [request.blinded], [got.element],
                             got.proof)
    assert make_vectors.ShakeRng(f"realms/challenge/{i}/id")(16).hex() == case["challenge_id"]
    assert make_vectors.ShakeRng(f"realms/challenge/{i}/nonce")(32).hex() == case[
        "challenge_nonce"]


def test_realm_threshold_combination() -> None:
    """The two evaluations combine (Lagrange at 0) to the whole key's evaluation, and
    finalize to the RFC 9497 OPRF output under the whole key: the PIN key's input."""
    case = R["combination"]
    evaluations = {e["request"]["realm"]: b(e["proof"]["evaluated"]) for e in R["evaluations"]}
    assert sorted(evaluations) == case["indices"]
    assert {str(k): v.hex() for k, v in threshold.lagrange_coefficients(
        case["indices"]).items()} == case["lagrange"]
    combined = threshold.combine(evaluations)
    assert combined.hex() == case["combined"] == case["whole_key_evaluated"]
    blinded = b(R["pin_key"]["blinded"])
    assert oprf.blind_evaluate(b(R["oprf_key"]["key"]), blinded).hex() == case[
        "whole_key_evaluated"]
    verified = threshold.combine_verified(
        blinded, [threshold.Evaluation(e["request"]["realm"], b(e["proof"]["evaluated"]),
                                       b(e["proof"]["proof"])) for e in R["evaluations"]],
        {e["request"]["realm"]: b(e["public_share"]) for e in R["evaluations"]},
        R["threshold"])
    assert verified == combined
    pin_input = b(R["pin_key"]["pin_input"])
    output = oprf.finalize(pin_input, b(R["pin_key"]["blind"]), combined)
    assert output.hex() == case["oprf_output"] == R["pin_key"]["oprf_output"]
    assert oprf.evaluate(b(R["oprf_key"]["key"]), pin_input).hex() == case["oprf_output"]


@pytest.mark.parametrize("row", R["releases"], ids=lambda r: f"realm {r['realm']}")
def test_realm_release(row: dict[str, Any]) -> None:
    """RealmRelease's signed bytes over the realm's key and its challenge nonce, for the
    payment and the gateway's key; the PIN key's signature, sealed to the realm under
    release_proof_aad."""
    i, realm_key = row["realm"], REALM_KEYS[row["realm"]]
    evaluation = next(e for e in R["evaluations"] if e["request"]["realm"] == i)
    release = build(RealmRelease, row["fields"])
    assert release.challenge_id == evaluation["challenge_id"]
    assert row["nonce"] == evaluation["challenge_nonce"]
    assert (release.amount, release.currency, release.merchant,
            release.idempotency_key) == tuple(R["payment"].values())
    assert release.gateway_key == GATEWAY_KEY
    signed = release.signed_bytes(realm_key, b(row["nonce"]))
    assert signed.hex() == row["signed_bytes"]
    spec = row["signatures"]["pin_signature"]
    assert (spec["key"], spec["sealed_to_realm"]) == (R["pin_key"]["label"], i)
    seed = b(R["pin_key"]["seed"])
    assert signing.sign(seed, signed).hex() == row["pin_signature_plain"]
    assert release_proof_aad(CARD_ID, realm_key).hex() == row["aad"]
    assert ENVELOPES[spec["envelope"]]["envelope"] == release.pin_signature.hex()
    opened = envelope.open_envelope(REALM_SECRETS[i], release.pin_signature, b(row["aad"]))
    signing.verify(b(R["pin_key"]["verifier"]), signed, bytes(opened))
    assert bytes(opened).hex() == row["pin_signature_plain"]


@pytest.mark.parametrize("row", R["shares"], ids=lambda r: f"realm {r['realm']}")
def test_realm_sealed_share(row: dict[str, Any]) -> None:
    """share_aad binds card, realm, gateway, version and payment; Sigma_i sealed to the
    gateway under it; share_commitment is BLAKE2b-256 of the encoded share."""
    i, realm_key = row["realm"], REALM_KEYS[row["realm"]]
    pay = R["payment"]
    aad = share_aad(CARD_ID, realm_key, GATEWAY_KEY, row["version"], pay["amount"],
                    pay["currency"], pay["merchant"], pay["idempotency_key"])
    assert aad.hex() == row["aad"] == ENVELOPES[row["envelope"]]["aad"]
    assert ENVELOPES[row["envelope"]]["envelope"] == row["sealed"]
    sigma = envelope.open_envelope(GATEWAY_SECRET, b(row["sealed"]), aad)
    assert bytes(sigma) == SIGMAS[i] == b(row["sigma"])
    message = encode(D_SHARE_COMMITMENT, CARD_ID.encode(), realm_key, SIGMAS[i])
    assert message.hex() == row["commitment_message"]
    assert hashlib.blake2b(message, digest_size=32).hexdigest() == row["commitment"]
    assert share_commitment(CARD_ID, realm_key, sigma).hex() == row["commitment"]
    registration = next(r for r in R["registrations"] if r["realm"] == i)
    assert registration["commitment"] == row["commitment"]


def test_gateway_authorize() -> None:
    """GatewayAuthorize's signed bytes over the gateway's key (the two released shares,
    every realm as a member) and the device's signature; its envelope is D || sealed
    card record under gateway_envelope_aad; the gateway recombines the data key."""
    case = R["gateway_authorize"]
    auth = gateway_authorize_of(case["fields"])
    assert case["signed_for"] == GATEWAY_KEY.hex()
    check_device_signature(case, auth.signed_bytes(GATEWAY_KEY))
    pay = R["payment"]
    assert (auth.amount, auth.currency, auth.merchant, auth.idempotency_key) == tuple(
        pay.values())
    assert auth.refresh_key.hex() == R["keys"]["refresh"]["public"]
    assert [(m.index, m.realm_key) for m in auth.members] == sorted(REALM_KEYS.items())
    assert [(s.index, s.sealed.hex(), s.commitment.hex()) for s in auth.shares] == [
        (r["realm"], r["sealed"], r["commitment"]) for r in R["shares"]]
    aad = gateway_envelope_aad(CARD_ID, GATEWAY_KEY, auth.idempotency_key)
    assert aad.hex() == case["envelope_aad"] == ENVELOPES[case["envelope"]]["aad"]
    assert auth.envelope.hex() == ENVELOPES[case["envelope"]]["envelope"]
    plain = envelope.open_envelope(GATEWAY_SECRET, auth.envelope, aad)
    assert bytes(plain).hex() == case["envelope_plaintext"]
    part, sealed_record = bytes(plain[:64]), bytes(plain[64:])
    assert part.hex() == R["data_key"]["device_part"]
    opened = [threshold.Share(s.index, envelope.open_envelope(
        GATEWAY_SECRET, s.sealed, share_aad(CARD_ID, s.realm_key, GATEWAY_KEY, 0,
                                            *pay.values()))) for s in auth.shares]
    key = recover_data_key(part, opened, R["threshold"])
    assert key.hex() == R["data_key"]["key"]
    assert open_sealed(key, sealed_record, _protocol.card_record_aad(CARD_ID))


def test_realm_resplit_deal() -> None:
    """deal_refresh with the recorded rng: rho (two scalars) and its 2-of-3 sharing; the
    new token from its label; rho || T sealed to the refresh key at version 1, by
    seal_device_refresh with the envelope's draws; D' = D - rho."""
    case = R["resplit"]
    rng = Recording(case["rng"])
    fresh = deal_refresh(R["threshold"], R["realms"], rng=rng)
    assert rng.draws == case["draws"]
    assert fresh.device_delta.hex() == case["rho"]
    assert [{"index": s.index, "value": s.value.hex()} for s in fresh.share_deltas] == case[
        "rho_shares"]
    token = case["token"]
    assert make_vectors.ShakeRng(token["from"])(32).hex() == token["token"]
    refresh = case["device_refresh"]
    assert refresh["plaintext"] == case["rho"] + token["token"]
    row = ENVELOPES[refresh["envelope"]]
    assert (row["aad"], row["plaintext"], row["envelope"]) == (
        refresh["aad"], refresh["plaintext"], refresh["sealed"])
    with replayed(row["draws"]):
        sealed = seal_device_refresh(b(R["keys"]["refresh"]["public"]), CARD_ID,
                                     case["version"], b(refresh["plaintext"]))
    assert sealed.hex() == refresh["sealed"]
    opened = open_device_refresh(b(R["keys"]["refresh"]["secret"]), CARD_ID, case["version"],
                                 sealed)
    assert opened.hex() == refresh["plaintext"]
    assert case["device_part"] == R["data_key"]["device_part"]
    part_next = refresh_device_part(b(case["device_part"]), b(case["rho"]))
    assert part_next.hex() == case["device_part_next"]


@pytest.mark.parametrize("row", R["resplit"]["deltas"], ids=lambda r: f"realm {r['realm']}")
def test_realm_delta(row: dict[str, Any]) -> None:
    """delta_key: BLAKE2b-256 keyed with X25519(gateway, realm) over the encoded card,
    keys and version, the same from either side; seal_delta with the recorded nonce
    seals rho_i || T under the delta AAD; the realm opens it."""
    i, realm_key = row["realm"], REALM_KEYS[row["realm"]]
    case = R["resplit"]
    assert (row["gateway_key"], row["version"]) == (GATEWAY_KEY.hex(), case["version"])
    shared = envelope.x25519(GATEWAY_SECRET, realm_key)
    assert shared.hex() == row["shared_secret"]
    assert envelope.x25519(REALM_SECRETS[i], GATEWAY_KEY) == shared
    assert hashlib.blake2b(b(row["key_message"]), key=bytes(shared),
                           digest_size=32).hexdigest() == row["delta_key"]
    for own, peer in ((GATEWAY_SECRET, realm_key), (REALM_SECRETS[i], GATEWAY_KEY)):
        assert delta_key(own, peer, CARD_ID, realm_key, GATEWAY_KEY, row["version"]).hex() == row[
            "delta_key"]
    rho_i = case["rho_shares"][i - 1]
    assert rho_i["index"] == i
    assert row["plaintext"] == rho_i["value"] + case["token"]["token"]
    assert [make_vectors.ShakeRng(f"realms/delta/{i}")(24).hex()] == row["draws"]
    with replayed(row["draws"]):
        sealed = seal_delta(GATEWAY_SECRET, GATEWAY_KEY, realm_key, CARD_ID, row["version"],
                            b(row["plaintext"]))
    assert sealed.hex() == row["sealed"]
    assert sealed[:24].hex() == row["draws"][0]
    assert open_sealed(b(row["delta_key"]), sealed, b(row["aad"])).hex() == row["plaintext"]
    assert open_delta(REALM_SECRETS[i], realm_key, GATEWAY_KEY, CARD_ID, row["version"],
                      sealed).hex() == row["plaintext"]
    delta = RealmDelta(realm_key, row["version"], GATEWAY_KEY, sealed)
    assert delta.encoded().hex() == row["encoded"]


def test_realm_next_shares() -> None:
    """The gateway's next commitments: each realm's share (realm 3's by share_at from the
    two opened) plus rho_i; the realm's own refresh_share gives the same; D' with any
    two next shares is the data key still."""
    case = R["resplit"]
    opened = [threshold.Share(e["realm"], bytearray(b(e["sigma"]))) for e in R["shares"]]
    rho = {s.index: s for s in share_list(case["rho_shares"])}
    nexts = []
    for row in case["next_shares"]:
        i, realm_key = row["realm"], REALM_KEYS[row["realm"]]
        served = i in {s.index for s in opened}
        assert row["from"] == ("opened" if served else "share_at")
        now = threshold.share_at(opened, R["threshold"], i)
        assert now.value.hex() == row["current"] == SIGMAS[i].hex()
        assert row["rho_i"] == rho[i].value.hex()
        nxt = threshold.add_shares(now, rho[i])
        assert nxt.value.hex() == row["next"]
        own = refresh_share(threshold.Share(i, bytearray(SIGMAS[i])), rho[i])
        assert own.value == nxt.value
        assert share_commitment(CARD_ID, realm_key, nxt.value).hex() == row["commitment"]
        nexts.append(nxt)
    for pair in itertools.combinations(nexts, R["threshold"]):
        key = recover_data_key(b(case["device_part_next"]), list(pair), R["threshold"])
        assert key.hex() == R["data_key"]["key"]


def test_realm_evaluate_with_delta() -> None:
    """The next evaluation, at version 1, carries realm 3's one delta: signed bytes over
    the delta's encoding too, the device's signature, the MAC under T_1; the realm
    applies the delta and its share matches the gateway's commitment."""
    row = R["evaluate_next"]
    i, realm_key = row["realm"], REALM_KEYS[row["realm"]]
    request = realm_evaluate_of(row["fields"])
    assert request.share_version == R["resplit"]["version"] == 1
    (delta,) = request.deltas
    assert delta.sealed.hex() == R["resplit"]["deltas"][i - 1]["sealed"]
    blind = row["blind"]
    assert make_vectors.scalar(blind["from"]).hex() == blind["blind"]
    _, blinded = oprf.blind(b(R["pin_key"]["pin_input"]), rng=lambda: b(blind["blind"]))
    assert blinded.hex() == blind["blinded"] == request.blinded.hex()
    signed = request.signed_bytes(realm_key)
    check_device_signature(row, signed)
    proof = row["possession"]
    assert proof["token"] == R["resplit"]["token"]["token"]
    assert _resplit.possession_mac(b(proof["token"]), None, signed).hex() == proof["mac"]
    assert request.possession.hex() == proof["mac"]
    step = open_delta(REALM_SECRETS[i], realm_key, delta.gateway_key, CARD_ID, delta.version,
                      delta.sealed)
    moved = refresh_share(threshold.Share(1, bytearray(SIGMAS[i])),
                          threshold.Share(1, bytearray(step[:64])))
    commitment = R["resplit"]["next_shares"][i - 1]["commitment"]
    assert share_commitment(CARD_ID, realm_key, moved.value).hex() == commitment
    assert _resplit.possession_mac(bytes(step[64:]), None, signed) == request.possession


_REALM_WIRE: dict[str, Callable[[dict[str, Any]], Any]] = {
    "REALM_EVALUATE": realm_evaluate_of,
    "GATEWAY_AUTHORIZE": gateway_authorize_of,
    "GATEWAY_REPLY": gateway_reply_of,
}


@pytest.mark.parametrize("case", R["wire"], ids=lambda c: c["type"])
def test_realm_wire_json(case: dict[str, Any]) -> None:
    """_wire.dumps with _realm_api's messages gives the recorded body; loads reads it back;
    the messages are the ones the other realm vectors record."""
    message = _REALM_WIRE[case["message"]](case["fields"])
    assert type(message).__name__ == case["type"]
    codec = getattr(_realm_api, case["message"])
    assert _wire.dumps(codec, message).decode("utf-8") == case["json"]
    assert _wire.loads(codec, case["json"].encode("utf-8")) == message
    same = {"REALM_EVALUATE": R["evaluate_next"]["fields"],
            "GATEWAY_AUTHORIZE": R["gateway_authorize"]["fields"]}
    if case["message"] in same:
        assert case["fields"] == same[case["message"]]
    else:
        assert message.share_version == R["resplit"]["version"]
        assert message.refresh.hex() == R["resplit"]["device_refresh"]["sealed"]
        assert [d.sealed.hex() for d in message.deltas] == [
            d["sealed"] for d in R["resplit"]["deltas"]]
        assert [c.commitment.hex() for c in message.commitments] == [
            s["commitment"] for s in R["resplit"]["next_shares"]]


def test_realm_catch_up() -> None:
    """A RealmCatchUp carrying the next evaluation's step alone, signed by the device key
    over the realm's key (no possession MAC: the steps are the gateway's)."""
    row = R["catch_up"]
    f = row["fields"]
    request = RealmCatchUp(f["card_id"], b(f["nonce"]), f["timestamp"],
                           tuple(realm_delta_of(d) for d in f["deltas"]), b(f["signature"]))
    assert request.deltas == realm_evaluate_of(R["evaluate_next"]["fields"]).deltas
    check_device_signature(row, request.signed_bytes(REALM_KEYS[row["realm"]]))


def test_every_realm_signed_message_has_a_vector() -> None:
    """Each message class with signed_bytes() in _realm_protocol has a vector."""
    signed_classes = {name for name in _realm_protocol.__all__
                      if hasattr(getattr(_realm_protocol, name), "signed_bytes")}
    covered = {R["registrations"][0]["message"], R["evaluations"][0]["request"]["message"],
               R["releases"][0]["message"], R["gateway_authorize"]["message"],
               R["evaluate_next"]["message"], R["catch_up"]["message"]}
    assert signed_classes == covered


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


def _fail_open_delta(row: dict[str, Any]) -> None:
    open_delta(b(row["realm_secret"]), b(row["realm_key"]), b(row["gateway_key"]),
               row["card_id"], row["version"], b(row["sealed"]))


def _fail_open_share(row: dict[str, Any]) -> None:
    envelope.open_envelope(b(row["gateway_secret"]), b(row["sealed"]), share_aad(
        row["card_id"], b(row["realm_key"]), b(row["gateway_key"]), row["version"],
        row["amount"], row["currency"], row["merchant"], row["idempotency_key"]))


def _fail_open_device_refresh(row: dict[str, Any]) -> None:
    open_device_refresh(b(row["secret"]), row["card_id"], row["version"], b(row["sealed"]))


def _fail_recover_data_key(row: dict[str, Any]) -> None:
    recover_data_key(b(row["device_part"]), share_list(row["shares"]), len(row["shares"]))


_OPERATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "open_envelope": _fail_open_envelope,
    "open_sealed": _fail_open_sealed,
    "open_refresh": _fail_open_refresh,
    "kek_unwrap": _fail_kek_unwrap,
    "verify": _fail_verify,
    "card_from_record": _fail_card_from_record,
    "audit_verify": _fail_audit_verify,
    "wire_loads": _fail_wire_loads,
    "open_delta": _fail_open_delta,
    "open_share": _fail_open_share,
    "open_device_refresh": _fail_open_device_refresh,
    "recover_data_key": _fail_recover_data_key,
}
_ERRORS: dict[str, type[Exception]] = {
    "AuthenticationFailed": AuthenticationFailed,
    "TamperedData": TamperedData,
    "ConfigurationError": ConfigurationError,
    "InvalidCard": InvalidCard,
    "MalformedRequest": MalformedRequest,
    "DecodeError": DecodeError,
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
