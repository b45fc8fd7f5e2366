"""Write tests/vectors/protocol.json: known answers for splitvault's own formats (issue 13).

    PYTHONPATH=src python tests/vectors/make_protocol_vectors.py

For a port of the device (Kotlin, Swift) and for anyone changing a format: every signed
message's bytes, the AADs, the card id, the envelope, the sealed card record and its
encoding, the PIN input and PIN key, the KEK wrap, the XOR shares and their re-split, the
audit MAC, the ledger's digests and the wire JSON of a few messages. The threshold glue has
its own file, threshold.json (make_threshold_vectors.py); this one names it and its SHA-256.

Randomness is injected and recorded, so a port can replay every case:

- a value drawn "from label L" is the SHAKE-256 output stream of L (ASCII), read front to
  back, n bytes per call (the same ``ShakeRng`` as threshold.json's);
- a scalar (OPRF key, blind) is 64 stream bytes reduced mod L
  (``crypto_core_ristretto255_scalar_reduce``);
- where the library draws its own bytes (``secrets.token_bytes``), this script replaces
  ``secrets.token_bytes`` for that one call with the case's stream and records every draw,
  in order, as the case's ``draws``. ``seal_envelope`` draws the ephemeral X25519 secret
  (32) and then the nonce (24); ``Kek.wrap`` the nonce (24); ``_refresh.new_share`` the
  next server share (32). ``shares.split`` and ``seal`` take their rng and nonce as
  arguments; the PIN's OPRF blind is passed to ``oprf.blind(rng=...)``.

Ed25519 is deterministic, so the signatures are known answers too. Bytes are lower-case hex;
``*_text`` fields are the same bytes as UTF-8 text where that helps reading.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pysodium

from splitvault import Card, KdfProfile, Pin, _resplit, _wire
from splitvault._protocol import (
    AuthorizeRequest,
    CardStatusReply,
    CardStatusRequest,
    ChangePinBegin,
    ChangePinFinish,
    DeleteRequest,
    EnrollBegin,
    EnrollFinish,
    EvaluateReply,
    EvaluateRequest,
    ReenrollBegin,
    ReenrollFinish,
    card_id_for,
    card_record_aad,
    pin_input,
    proof_aad,
    refresh_aad,
)
from splitvault.crypto import envelope, oprf, shares, signing
from splitvault.crypto.encoding import encode, u64
from splitvault.crypto.kdf import argon2id, hkdf
from splitvault.crypto.sealing import seal
from splitvault.hazmat import derive_pin_seed
from splitvault.server import Kek, Keyring, _audit
from splitvault.server._ledger import Ledger
from splitvault.server._refresh import new_share

HERE = Path(__file__).resolve().parent
OUT = HERE / "protocol.json"
THRESHOLD = HERE / "threshold.json"

TIMESTAMP_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z in Unix milliseconds: the device clock of every signed request."""
PROFILE = KdfProfile.TEST_ONLY
"""Argon2id t=1, m=8 KiB, p=1: the cheapest, so a port's test suite runs fast."""
ENVELOPE_INFO = b"splitvault/v1/envelope-key"  # crypto/envelope.py _INFO
PIN_KEY_DOMAIN = b"splitvault/v1/pin-key"  # device/_pinkey.py _D_PIN_KEY
KEK_DOMAIN = b"splitvault/v1/kek-wrap"  # server/_kek.py _D_WRAP


class ShakeRng:
    """rng(n): the next n bytes of SHAKE-256(label)."""

    def __init__(self, label: str) -> None:
        self.label = label.encode("ascii")
        self.offset = 0

    def __call__(self, n: int) -> bytes:
        out = hashlib.shake_256(self.label).digest(self.offset + n)[self.offset :]
        self.offset += n
        return out


def scalar(label: str) -> bytes:
    """A ristretto255 scalar: 64 bytes from ``label`` reduced mod L."""
    return bytes(pysodium.crypto_core_ristretto255_scalar_reduce(ShakeRng(label)(64)))


@contextmanager
def injected(rng: Callable[[int], bytes]) -> Iterator[list[bytes]]:
    """``secrets.token_bytes`` served from ``rng`` for the ``with`` block; yields the draws."""
    draws: list[bytes] = []
    real = secrets.token_bytes

    def token_bytes(nbytes: int | None = None) -> bytes:
        out = rng(32 if nbytes is None else nbytes)
        draws.append(out)
        return out

    secrets.token_bytes = token_bytes
    try:
        yield draws
    finally:
        secrets.token_bytes = real


def h(value: bytes | bytearray) -> str:
    return bytes(value).hex()


def fields_of(message: Any) -> dict[str, Any]:
    """A message's fields as JSON: bytes as hex, the rest as they are."""
    return {f.name: h(v) if isinstance(v, bytes | bytearray) else v
            for f in dataclasses.fields(message) for v in [getattr(message, f.name)]}


class Story:
    """One card's life, so every vector's inputs are the other vectors' outputs."""

    def __init__(self) -> None:
        self.device_seed = ShakeRng("key/device")(32)
        self.wallet_seed = ShakeRng("key/wallet")(32)
        self.server_secret = ShakeRng("key/server")(32)
        self.refresh_secret = ShakeRng("key/refresh")(32)
        self.device_key = signing.public_key(self.device_seed)
        self.wallet_key = signing.public_key(self.wallet_seed)
        self.server_key = envelope.public_key(self.server_secret)
        self.refresh_key = envelope.public_key(self.refresh_secret)
        self.card_id = card_id_for(self.device_key)
        self.challenge_id = ShakeRng("challenge/id")(16).hex()
        self.challenge_nonce = ShakeRng("challenge/nonce")(32)
        self.envelopes: list[dict[str, Any]] = []

    def keys(self) -> dict[str, Any]:
        return {
            "device": {"type": "ed25519", "seed": h(self.device_seed), "public": h(self.device_key),
                       "from": "key/device"},
            "wallet": {"type": "ed25519", "seed": h(self.wallet_seed), "public": h(self.wallet_key),
                       "from": "key/wallet"},
            "server": {"type": "x25519", "secret": h(self.server_secret),
                       "public": h(self.server_key), "from": "key/server"},
            "refresh": {"type": "x25519", "secret": h(self.refresh_secret),
                        "public": h(self.refresh_key), "from": "key/refresh"},
            "card_id": self.card_id,
            "challenge_id": self.challenge_id, "challenge_nonce": h(self.challenge_nonce),
        }

    def seal_to(self, label: str, recipient_secret: bytes, plaintext: bytes, aad: bytes,
                aad_of: str) -> bytes:
        """seal_envelope with draws from ``label``, recorded with its intermediate values."""
        recipient = envelope.public_key(recipient_secret)
        with injected(ShakeRng(label)) as draws:
            sealed = envelope.seal_envelope(recipient, plaintext, aad)
        eph_secret, nonce = draws
        eph_public = envelope.public_key(eph_secret)
        shared = envelope.x25519(eph_secret, recipient)
        salt = eph_public + recipient
        key = hkdf(shared, salt=salt, info=ENVELOPE_INFO, length=32)
        self.envelopes.append({
            "label": label, "recipient_secret": h(recipient_secret),
            "recipient_public": h(recipient), "aad_of": aad_of, "aad": h(aad),
            "plaintext": h(plaintext), "draws": [h(d) for d in draws],
            "ephemeral_public": h(eph_public), "nonce": h(nonce), "shared_secret": h(shared),
            "hkdf_salt": h(salt), "hkdf_info": h(ENVELOPE_INFO), "key": h(key),
            "envelope": h(sealed),
        })
        return sealed

    def proof(self, kind: str, value: bytes) -> bytes:
        """A PIN verifier or PIN signature sealed to the server under proof_aad(kind)."""
        return self.seal_to(f"envelope/proof/{kind}", self.server_secret, value,
                            proof_aad(kind, self.card_id), f"proof_aad({kind!r}, card_id)")


def pin_key_case(story: Story, label: str, pin: str, *, oprf_key: bytes) -> dict[str, Any]:
    """PIN -> pin_input -> OPRF (blind, evaluate, finalize) -> Argon2id -> HKDF -> Ed25519."""
    salt = ShakeRng("pin-key/salt")(16)
    device_secret = ShakeRng("pin-key/device-secret")(32)
    blind_scalar = scalar(label + "/blind")
    with Pin.from_digits(pin) as p:
        x = bytes(pin_input(story.card_id, p._digits()))
    blind, blinded = oprf.blind(x, rng=lambda: blind_scalar)
    evaluated = oprf.blind_evaluate(oprf_key, blinded)
    output = bytes(oprf.finalize(x, blind, evaluated))
    stretched = argon2id(output, salt, time_cost=PROFILE.time_cost,
                         memory_cost_kib=PROFILE.memory_cost_kib,
                         parallelism=PROFILE.parallelism)
    info = encode(PIN_KEY_DOMAIN, story.card_id.encode())
    seed = derive_pin_seed(bytearray(output), salt=salt, device_secret=device_secret,
                           card_id=story.card_id, profile=PROFILE)
    return {
        "label": label, "card_id": story.card_id, "pin": pin, "pin_input": h(x),
        "oprf_key": h(oprf_key), "blind": h(blind), "blinded": h(blinded),
        "evaluated": h(evaluated), "oprf_output": h(output),
        "argon2id": {"salt": h(salt), "time_cost": PROFILE.time_cost,
                     "memory_cost_kib": PROFILE.memory_cost_kib,
                     "parallelism": PROFILE.parallelism, "length": 32, "version": 19,
                     "output": h(stretched)},
        "device_secret": h(device_secret),
        "hkdf": {"hash": "sha512", "ikm": h(stretched + device_secret), "salt": None,
                 "info": h(info), "length": 32},
        "seed": h(seed), "verifier": h(signing.public_key(seed)),
    }


def card_record_cases(story: Story) -> list[dict[str, Any]]:
    today = datetime.date(2026, 1, 1)
    cases = []
    for label, pan, expiry, holder in (
        ("card/visa", "4111 1111 1111 1111", "12/30", "Ada Lovelace"),
        ("card/utf8", "5555-5555-5555-4444", "07/2031", "  Zoë Ångström-Kim  "),
    ):
        card = Card.parse(pan, expiry, holder, today=today)
        record = bytes(card._to_record())
        key, nonce = ShakeRng(label + "/data-key")(32), ShakeRng(label + "/nonce")(24)
        aad = card_record_aad(story.card_id)
        cases.append({
            "label": label, "input": {"pan": pan, "expiry": expiry, "holder": holder},
            "record": h(record), "record_text": record.decode("utf-8"),
            "data_key": h(key), "nonce": h(nonce), "aad": h(aad),
            "sealed": h(seal(key, record, aad, nonce=nonce)),
        })
    return cases


PIN, NEW_PIN = "pin-key/enroll", "pin-key/new-pin"
DEVICE = {"key": "device"}


def pin_sig(kind: str, label: str = PIN) -> dict[str, str]:
    return {"key": label, "sealed": kind}


def message_row(message: Any, signed: bytes, signatures: dict[str, dict[str, str]],
                nonce: bytes | None = None) -> dict[str, Any]:
    """``signatures``: field -> the key that signed ``signed`` (``"device"``, ``"wallet"``,
    or a ``pin_key`` case's label) and, for a PIN-key signature, the ``proof_aad`` kind it
    is sealed to the server under (an ``envelopes`` row)."""
    row: dict[str, Any] = {"message": type(message).__name__, "fields": fields_of(message)}
    if nonce is not None:
        row["nonce"] = h(nonce)
    row.update({"signed_bytes": h(signed), "signatures": signatures})
    return row


def messages(story: Story, pin: dict[str, Any], new_pin: dict[str, Any],
             card: dict[str, Any], device_share: bytes, server_share: bytes,
             ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every signed request, in the order of a card's life; also the built objects."""
    cid, chal, nonce = story.card_id, story.challenge_id, story.challenge_nonce
    dev, wal = story.device_seed, story.wallet_seed
    pin_seed, new_seed = bytes.fromhex(pin["seed"]), bytes.fromhex(new_pin["seed"])
    rows: list[dict[str, Any]] = []
    built: dict[str, Any] = {}
    blinded = bytes.fromhex(pin["blinded"])

    def add(name: str, message: Any, signed: bytes, sigs: dict[str, dict[str, str]],
            nonce: bytes | None = None) -> None:
        built[name] = message
        row = message_row(message, signed, sigs, nonce)
        rows.append({"name": name, **row})

    # Enrollment: with the wallet key (v5), and as a client from before wallets sends it.
    begin = EnrollBegin(cid, story.device_key, blinded, b"", story.wallet_key, b"")
    signed = begin.signed_bytes()
    add("enroll_begin", dataclasses.replace(begin, signature=signing.sign(dev, signed),
                                            wallet_signature=signing.sign(wal, signed)),
        signed, {"signature": DEVICE, "wallet_signature": {"key": "wallet"}})
    plain = EnrollBegin(cid, story.device_key, blinded, b"")
    signed = plain.signed_bytes()
    add("enroll_begin_no_wallet", dataclasses.replace(plain, signature=signing.sign(dev, signed)),
        signed, {"signature": DEVICE})

    share_env = story.seal_to("envelope/enroll", story.server_secret, server_share,
                              EnrollFinish.envelope_aad(cid), "EnrollFinish.envelope_aad(card_id)")
    finish = EnrollFinish(cid, story.proof("enroll-verifier", bytes.fromhex(pin["verifier"])),
                          share_env, b"", b"")
    signed = finish.signed_bytes()
    add("enroll_finish", dataclasses.replace(
        finish, device_signature=signing.sign(dev, signed),
        pin_signature=story.proof("enroll-pin", signing.sign(pin_seed, signed))),
        signed, {"device_signature": DEVICE, "pin_signature": pin_sig("enroll-pin")})

    # A payment at share version 3, with the refresh key of a re-split still in flight.
    ev = EvaluateRequest(cid, ShakeRng("evaluate/nonce")(16), TIMESTAMP_MS, blinded, b"", 3,
                         story.refresh_key)
    add("evaluate", dataclasses.replace(ev, signature=signing.sign(dev, ev.signed_bytes())),
        ev.signed_bytes(), {"signature": DEVICE})
    ev0 = EvaluateRequest(cid, ShakeRng("evaluate/first/nonce")(16), TIMESTAMP_MS, blinded, b"")
    add("evaluate_first_version",
        dataclasses.replace(ev0, signature=signing.sign(dev, ev0.signed_bytes())),
        ev0.signed_bytes(), {"signature": DEVICE})

    auth_env = story.seal_to(
        "envelope/authorize", story.server_secret,
        device_share + bytes.fromhex(card["sealed"]),
        AuthorizeRequest.envelope_aad(cid, chal),
        "AuthorizeRequest.envelope_aad(card_id, challenge_id); plaintext device_share || "
        "sealed card record")
    auth = AuthorizeRequest(cid, chal, 12500, "KRW", "Corner Café", "order-0001", auth_env, b"",
                            story.refresh_key)
    signed = auth.signed_bytes(nonce)
    add("authorize", dataclasses.replace(
        auth, pin_signature=story.proof("authorize", signing.sign(pin_seed, signed))),
        signed, {"pin_signature": pin_sig("authorize")}, nonce)

    new_blinded = bytes.fromhex(new_pin["blinded"])
    cpb = ChangePinBegin(cid, chal, new_blinded, b"")
    signed = cpb.signed_bytes(nonce)
    add("change_pin_begin", dataclasses.replace(
        cpb, pin_signature=story.proof("change-pin", signing.sign(pin_seed, signed))),
        signed, {"pin_signature": pin_sig("change-pin")}, nonce)
    cpf = ChangePinFinish(cid, chal, story.proof("change-pin-verifier",
                                                 bytes.fromhex(new_pin["verifier"])), b"", b"")
    signed = cpf.signed_bytes(nonce)
    add("change_pin_finish", dataclasses.replace(
        cpf, old_pin_signature=story.proof("change-pin-old", signing.sign(pin_seed, signed)),
        new_pin_signature=story.proof("change-pin-new", signing.sign(new_seed, signed))),
        signed, {"old_pin_signature": pin_sig("change-pin-old"),
                 "new_pin_signature": pin_sig("change-pin-new", NEW_PIN)}, nonce)

    status = CardStatusRequest(cid, ShakeRng("card-status/nonce")(16), TIMESTAMP_MS, b"")
    add("card_status", dataclasses.replace(status, signature=signing.sign(
        dev, status.signed_bytes())), status.signed_bytes(), {"signature": DEVICE})

    rb = ReenrollBegin(cid, ShakeRng("reenroll/nonce")(16), TIMESTAMP_MS, new_blinded, b"")
    add("reenroll_begin", dataclasses.replace(rb, signature=signing.sign(dev, rb.signed_bytes())),
        rb.signed_bytes(), {"signature": DEVICE})
    re_env = story.seal_to("envelope/reenroll", story.server_secret, server_share,
                           ReenrollFinish.envelope_aad(cid, chal),
                           "ReenrollFinish.envelope_aad(card_id, challenge_id)")
    rf = ReenrollFinish(cid, chal, story.proof("reenroll-verifier",
                                               bytes.fromhex(new_pin["verifier"])),
                        re_env, b"", b"")
    signed = rf.signed_bytes(nonce)
    add("reenroll_finish", dataclasses.replace(
        rf, device_signature=signing.sign(dev, signed),
        pin_signature=story.proof("reenroll-pin", signing.sign(new_seed, signed))),
        signed, {"device_signature": DEVICE,
                 "pin_signature": pin_sig("reenroll-pin", NEW_PIN)}, nonce)

    delete = DeleteRequest(cid, ShakeRng("delete/nonce")(16), TIMESTAMP_MS, b"")
    add("delete", dataclasses.replace(delete, signature=signing.sign(
        dev, delete.signed_bytes())), delete.signed_bytes(), {"signature": DEVICE})
    return rows, built


def aads(story: Story) -> list[dict[str, Any]]:
    cid, chal = story.card_id, story.challenge_id
    rows = [
        ("card_record_aad", [cid], card_record_aad(cid)),
        ("refresh_aad", [cid, 4], refresh_aad(cid, 4)),
        ("EnrollFinish.envelope_aad", [cid], EnrollFinish.envelope_aad(cid)),
        ("AuthorizeRequest.envelope_aad", [cid, chal], AuthorizeRequest.envelope_aad(cid, chal)),
        ("ReenrollFinish.envelope_aad", [cid, chal], ReenrollFinish.envelope_aad(cid, chal)),
    ]
    rows += [("proof_aad", [kind, cid], proof_aad(kind, cid)) for kind in (
        "enroll-verifier", "enroll-pin", "authorize", "change-pin", "change-pin-verifier",
        "change-pin-old", "change-pin-new", "reenroll-verifier", "reenroll-pin")]
    return [{"function": f, "args": args, "bytes": h(b)} for f, args, b in rows]


def encoding_cases() -> list[dict[str, Any]]:
    """encode(domain, *fields) and u64, the base of every signed or bound byte string."""
    cases = [(b"d", []), (b"splitvault/v1/x", [b"", b"ab", b"c"]),
             (b"splitvault/v1/x", [b"a", b"bc"]), (b"t", [u64(0), u64(2**64 - 1)])]
    return [{"domain": h(d), "fields": [h(f) for f in fs], "encoded": h(encode(d, *fs))}
            for d, fs in cases]


def kek_cases(story: Story, kek: Kek, oprf_key: bytes, server_share: bytes
              ) -> list[dict[str, Any]]:
    cases = []
    for label, purpose, row, secret in (
        ("kek/share", "share", story.card_id, server_share),
        ("kek/oprf-key", "oprf-key", story.card_id, oprf_key),
    ):
        with injected(ShakeRng(label)) as draws:
            wrapped = kek.wrap(purpose, row, secret)
        cases.append({
            "label": label, "kid": kek.kid_hex, "key": h(kek.material()), "purpose": purpose,
            "row": row, "secret": h(secret), "draws": [h(d) for d in draws],
            "aad": h(encode(KEK_DOMAIN, kek.kid, purpose.encode(), row.encode())),
            "wrapped": h(wrapped),
        })
    return cases


def resplit_case(story: Story, kek: Kek, data_key: bytes, device_share: bytes,
                 server_share: bytes, sealed_record: bytes) -> dict[str, Any]:
    """One approved payment's re-split at version 3: S_4 drawn, R = S_3 xor S_4 sealed to
    the device's refresh key under refresh_aad(card_id, 4), D_4 = D_3 xor R."""
    version = 3
    with injected(ShakeRng("resplit/next-share")) as draws:
        fresh, r = new_share(server_share)
    with injected(ShakeRng("resplit/wrap")) as wrap_draws:
        wrapped_next = kek.wrap("share", story.card_id, fresh)
    token, token_next = ShakeRng("resplit/token-3")(32), ShakeRng("resplit/token-4")(32)
    tag = _resplit._tag(token, story.card_id, version + 1, r, token_next)
    sealed = story.seal_to("envelope/refresh", story.refresh_secret,
                           bytes(r) + token_next + tag,
                           refresh_aad(story.card_id, version + 1),
                           "refresh_aad(card_id, version + 1)")
    device_next = shares.combine(device_share, r)
    assert shares.combine(device_next, fresh) == data_key
    message = b"the signed bytes of an EvaluateRequest"
    dh = ShakeRng("resplit/dh")(32)
    return {
        "token": h(token), "token_next": h(token_next), "tag": h(tag),
        "tag_recipe": "BLAKE2b-256 keyed by token over encode(D_REFRESH_TAG, card_id, "
                      "u64(version + 1), R, token_next); sealed plaintext R || token_next "
                      "|| tag",
        "possession": {"message": h(message), "epoch_token": h(token), "token": h(token_next),
                       "dh": h(dh), "epoch_mac": h(_resplit.epoch_mac(token, message)),
                       "version_mac": h(_resplit.possession_mac(token_next, dh, message)),
                       "version_mac_without_refresh_key": h(
                           _resplit.possession_mac(token_next, None, message))},
        "card_id": story.card_id, "version": version, "data_key": h(data_key),
        "device_share": h(device_share), "server_share": h(server_share),
        "draws": [h(d) for d in draws], "server_share_next": h(fresh), "r": h(r),
        "device_share_next": h(device_next),
        "wrapped_next": {"purpose": "share", "row": story.card_id,
                         "draws": [h(d) for d in wrap_draws], "wrapped": h(wrapped_next)},
        "refresh_secret": h(story.refresh_secret), "refresh_key": h(story.refresh_key),
        "aad": h(refresh_aad(story.card_id, version + 1)), "sealed": h(sealed),
        "sealed_record": h(sealed_record),
    }


def audit_case(story: Story) -> dict[str, Any]:
    key = ShakeRng("audit/key")(32)
    link = _audit.chain(key)
    prev = bytes(32)
    entries = []
    for seq, at, event, card_id, detail in (
        (1, 1767225600.0, "enrolled", story.card_id, "{}"),
        (2, 1767225601.25, "guess_used", story.card_id, '{"used":1}'),
        (3, 1767225602.125, "authorized", story.card_id, ""),
        (4, 1767225603.5, "key_rotated", "", '{"kid":"00"}'),
    ):
        mac = link(prev, seq, at, event, card_id, detail)
        message = encode(b"splitvault/v1/audit", prev, u64(seq), repr(at).encode(),
                         event.encode(), card_id.encode(), detail.encode())
        entries.append({"seq": seq, "at": at, "at_text": repr(at), "event": event,
                        "card_id": card_id, "detail": detail, "prev": h(prev),
                        "message": h(message), "mac": h(mac)})
        prev = mac
    return {"key": h(key), "genesis": h(bytes(32)), "entries": entries, "head": h(prev)}


def ledger_case(story: Story, kek: Kek) -> dict[str, Any]:
    mac_key = ShakeRng("ledger/key")(32)
    ledger = Ledger(mac_key, Keyring.of(kek))
    rows = []
    for idem, amount, currency, merchant in (("order-0001", 12500, "KRW", "Corner Café"),
                                             ("order-0002", 999, "USD", "Books")):
        rows.append({
            "card_id": story.card_id, "idempotency_key": idem, "amount": amount,
            "currency": currency, "merchant": merchant,
            "key_digest": h(ledger.key_digest(story.card_id, idem)),
            "params_digest": h(ledger.params_digest(story.card_id, idem, amount, currency,
                                                    merchant)),
            "references": {str(a): ledger.reference(story.card_id, idem, a) for a in (0, 1)},
        })
    return {"mac_key": h(mac_key), "cases": rows}


def wire_cases(story: Story, built: dict[str, Any], evaluated: bytes, refresh_sealed: bytes
               ) -> list[dict[str, Any]]:
    """The JSON bodies (``_wire.dumps``) of a few messages, replies included."""
    reply = EvaluateReply(evaluated, 4, story.challenge_id, story.challenge_nonce,
                          1767225720.5, 3, refresh_sealed)
    cases = [("ENROLL_BEGIN", built["enroll_begin"]),
             ("ENROLL_BEGIN", built["enroll_begin_no_wallet"]),
             ("EVALUATE", built["evaluate"]), ("AUTHORIZE", built["authorize"]),
             ("DELETE", built["delete"]), ("EVALUATE_REPLY", reply),
             ("CARD_STATUS_REPLY", CardStatusReply(2, 5, False, False, 3))]
    return [{"message": name, "type": type(value).__name__, "fields": fields_of(value),
             "json": _wire.dumps(getattr(_wire, name), value).decode("utf-8")}
            for name, value in cases]


def _flip(hex_bytes: str, at: int) -> str:
    raw = bytearray.fromhex(hex_bytes)
    raw[at] ^= 1
    return raw.hex()


def must_fail(story: Story, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows a port must refuse, each with the error splitvault raises."""
    enroll = next(e for e in story.envelopes if e["label"] == "envelope/enroll")
    base = {k: enroll[k] for k in ("recipient_secret", "aad", "envelope")}
    other_card_aad = h(EnrollFinish.envelope_aad("0" * 32))
    card = doc["card_records"][0]
    kek = doc["kek_wrap"][0]
    resplit = doc["resplit"]
    audit = doc["audit"]["entries"]
    evaluate = next(m for m in doc["messages"] if m["name"] == "evaluate")
    ev_json = next(w for w in doc["wire"] if w["message"] == "EVALUATE")["json"]
    env_rows = [
        ("ephemeral key byte flipped", {"envelope": _flip(base["envelope"], 0)}),
        ("nonce byte flipped", {"envelope": _flip(base["envelope"], 32)}),
        ("ciphertext byte flipped", {"envelope": _flip(base["envelope"], 56)}),
        ("tag byte flipped", {"envelope": _flip(base["envelope"], len(base["envelope"]) // 2 - 1)}),
        ("AAD of another card", {"aad": other_card_aad}),
        ("opened with another key", {"recipient_secret": h(story.refresh_secret)}),
        ("shorter than the 72-byte overhead", {"envelope": base["envelope"][:142]}),
    ]
    rows: list[dict[str, Any]] = [
        {"operation": "open_envelope", "why": why, **base, **change,
         "error": "AuthenticationFailed"} for why, change in env_rows]
    rows += [
        {"operation": "open_sealed", "why": "sealed card record byte flipped",
         "key": card["data_key"], "aad": card["aad"], "sealed": _flip(card["sealed"], 30),
         "error": "AuthenticationFailed"},
        {"operation": "open_sealed", "why": "card record opened under another card id",
         "key": card["data_key"], "aad": h(card_record_aad("0" * 32)), "sealed": card["sealed"],
         "error": "AuthenticationFailed"},
        {"operation": "open_sealed", "why": "stale shares: D_3 xor S_4 opens nothing",
         "key": h(shares.combine(bytes.fromhex(resplit["device_share"]),
                                 bytes.fromhex(resplit["server_share_next"]))),
         "aad": card_record_aad(story.card_id).hex(), "sealed": resplit["sealed_record"],
         "error": "AuthenticationFailed"},
        {"operation": "open_refresh", "why": "sealed R for version 4 opened as version 5",
         "secret": resplit["refresh_secret"], "card_id": story.card_id, "version_after": 5,
         "sealed": resplit["sealed"], "error": "AuthenticationFailed"},
        {"operation": "open_refresh", "why": "sealed R opened for another card",
         "secret": resplit["refresh_secret"], "card_id": "0" * 32, "version_after": 4,
         "sealed": resplit["sealed"], "error": "AuthenticationFailed"},
        {"operation": "kek_unwrap", "why": "wrapped share byte flipped", **_kek(kek),
         "wrapped": _flip(kek["wrapped"], 20), "error": "TamperedData"},
        {"operation": "kek_unwrap", "why": "wrapped share moved to another card's row",
         **_kek(kek), "row": "0" * 32, "error": "TamperedData"},
        {"operation": "kek_unwrap", "why": "wrapped share read for another purpose",
         **_kek(kek), "purpose": "oprf-key", "error": "TamperedData"},
        {"operation": "kek_unwrap", "why": "key id of another KEK", **_kek(kek),
         "wrapped": _flip(kek["wrapped"], 0), "error": "ConfigurationError"},
        {"operation": "verify", "why": "evaluate's share version changed after signing",
         "public": story.device_key.hex(),
         "message": h(dataclasses.replace(_build_evaluate(evaluate), share_version=4)
                      .signed_bytes()),
         "signature": evaluate["fields"]["signature"], "error": "AuthenticationFailed"},
        {"operation": "verify", "why": "signed by the wallet key, not the device key",
         "public": story.device_key.hex(), "message": evaluate["signed_bytes"],
         "signature": h(signing.sign(story.wallet_seed, bytes.fromhex(evaluate["signed_bytes"]))),
         "error": "AuthenticationFailed"},
        {"operation": "card_from_record", "why": "record with a four-digit year",
         "record_text": card["record_text"].replace('"12/30"', '"12/2030"'),
         "error": "InvalidCard"},
        {"operation": "card_from_record", "why": "record with a space after a colon",
         "record_text": card["record_text"].replace('"v":1', '"v": 1'), "error": "InvalidCard"},
        {"operation": "card_from_record", "why": "record of another version",
         "record_text": card["record_text"].replace('"v":1', '"v":2'), "error": "InvalidCard"},
        {"operation": "audit_verify", "why": "entry 2's detail edited",
         "key": doc["audit"]["key"],
         "entries": [audit[0], {**audit[1], "detail": '{"used":0}'}, *audit[2:]],
         "error": "TamperedData at entry 2"},
        {"operation": "audit_verify", "why": "entry 2 removed",
         "key": doc["audit"]["key"], "entries": [audit[0], *audit[2:]],
         "error": "TamperedData at entry 2"},
        {"operation": "wire_loads", "why": "unknown field", "message": "EVALUATE",
         "json": ev_json[:-1] + ',"extra":1}', "error": "MalformedRequest"},
        {"operation": "wire_loads", "why": "field twice", "message": "EVALUATE",
         "json": ev_json[:-1] + ',"share_version":3}', "error": "MalformedRequest"},
        {"operation": "wire_loads", "why": "non-canonical base64url (unused bits set)",
         "message": "EVALUATE", "json": _noncanonical_nonce(ev_json), "error": "MalformedRequest"},
    ]
    return rows


def _kek(case: dict[str, Any]) -> dict[str, Any]:
    return {k: case[k] for k in ("kid", "key", "purpose", "row", "wrapped")}


def _build_evaluate(row: dict[str, Any]) -> EvaluateRequest:
    f = row["fields"]
    return EvaluateRequest(f["card_id"], bytes.fromhex(f["nonce"]), f["timestamp"],
                           bytes.fromhex(f["blinded"]), bytes.fromhex(f["signature"]),
                           f["share_version"], bytes.fromhex(f["refresh_key"]))


def _noncanonical_nonce(ev_json: str) -> str:
    """The 16-byte nonce's 22 base64url characters carry 4 unused bits in the last one."""
    obj = json.loads(ev_json)
    last = obj["nonce"][-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    obj["nonce"] = obj["nonce"][:-1] + alphabet[alphabet.index(last) | 1]
    return json.dumps(obj, separators=(",", ":"))


def build() -> dict[str, Any]:
    story = Story()
    oprf_key = scalar("pin-key/oprf-key")
    pin = pin_key_case(story, PIN, "123456", oprf_key=oprf_key)
    new_pin = pin_key_case(story, NEW_PIN, "908172",
                           oprf_key=scalar("pin-key/new-oprf-key"))
    cards = card_record_cases(story)
    data_key = bytes.fromhex(cards[0]["data_key"])
    pad = ShakeRng("shares/pad")
    device_share, server_share = (bytes(s) for s in shares.split(data_key, rng=pad))
    split_case = {"key": h(data_key), "rng": "shares/pad", "draws": [h(device_share)],
                  "device_share": h(device_share), "server_share": h(server_share)}
    rows, built = messages(story, pin, new_pin, cards[0], device_share, server_share)
    kek = Kek(ShakeRng("kek/kid")(8), bytearray(ShakeRng("kek/key")(32)))
    resplit = resplit_case(story, kek, data_key, device_share, server_share,
                           bytes.fromhex(cards[0]["sealed"]))
    doc: dict[str, Any] = {
        "description": (
            "splitvault's own formats (src/splitvault/_protocol.py and what it binds); made by "
            "tests/vectors/make_protocol_vectors.py, whose docstring defines the injected "
            "randomness; checked by tests/test_protocol_vectors.py"
        ),
        "conventions": [
            "bytes are lower-case hex; *_text is the same bytes as UTF-8",
            "a label's rng is the SHAKE-256 output stream of the label (ASCII), read front "
            "to back; a scalar is 64 stream bytes reduced mod L",
            "draws: what the library took from secrets.token_bytes, in order (seal_envelope: "
            "ephemeral X25519 secret 32, nonce 24; Kek.wrap: nonce 24; new_share: next "
            "server share 32); replay them to reproduce the bytes",
            "signatures are Ed25519 (deterministic); a PIN-key signature travels sealed to "
            "the server under proof_aad(kind, card_id)",
            "must_fail: each row is refused with the named error",
        ],
        "threshold": {
            "file": "threshold.json", "generator": "make_threshold_vectors.py",
            "sha256": hashlib.sha256(THRESHOLD.read_bytes()).hexdigest(),
            "covers": "Shamir over ristretto255, the threshold OPRF and its DLEQ proofs, the "
                      "t-of-n server share and its refresh",
        },
        "encoding": encoding_cases(),
        "keys": story.keys(),
        "card_id": [{"device_key": h(k), "card_id": card_id_for(k)}
                    for k in (story.device_key, bytes(32))],
        "aad": aads(story),
        "pin_key": [pin, new_pin],
        "card_records": cards,
        "shares": [split_case],
        "messages": rows,
        "kek_wrap": kek_cases(story, kek, oprf_key, server_share),
        "resplit": resplit,
        "audit": audit_case(story),
        "ledger": ledger_case(story, kek),
    }
    doc["wire"] = wire_cases(story, built, bytes.fromhex(pin["evaluated"]),
                             bytes.fromhex(resplit["sealed"]))
    doc["envelopes"] = story.envelopes
    doc["must_fail"] = must_fail(story, doc)
    return doc


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
