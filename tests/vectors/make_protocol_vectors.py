"""Write tests/vectors/protocol.json: known answers for splitvault's own formats (issue 13).

    PYTHONPATH=src python tests/vectors/make_protocol_vectors.py

For a port of the device (Kotlin, Swift) and for anyone changing a format: every signed
message's bytes, the AADs, the card id, the envelope, the sealed card record and its
encoding, the PIN input and PIN key, the KEK wrap, the XOR shares and their re-split, the
audit MAC, the ledger's digests and the wire JSON of a few messages. The threshold glue has
its own file, threshold.json (make_threshold_vectors.py); this one names it and its SHA-256.

``realms`` is one card of a 2-of-3 deployment (``_realm_protocol.py``, ``_realm_refresh.py``):
the dealt OPRF key and data key and their splits, each realm's registration, the evaluations
at version 0 with their DLEQ proofs and their threshold combination (the RFC 9497 output
under the whole key), the releases, the shares sealed to the gateway, GatewayAuthorize, the
gateway's re-split to version 1 (rho, its shares, the deltas, the device's refresh, the next
commitments, D' = D - rho), the next evaluation carrying realm 3's delta, and wire JSON.

Randomness is injected and recorded, so a port can replay every case:

- a value drawn "from label L" is the SHAKE-256 output stream of L (ASCII), read front to
  back, n bytes per call (the same ``ShakeRng`` as threshold.json's);
- a scalar (OPRF key, blind) is 64 stream bytes reduced mod L
  (``crypto_core_ristretto255_scalar_reduce``);
- where the library draws its own bytes (``secrets.token_bytes``), this script replaces
  ``secrets.token_bytes`` for that one call with the case's stream and records every draw,
  in order, as the case's ``draws``. ``seal_envelope`` draws the ephemeral X25519 secret
  (32) and then the nonce (24); ``Kek.wrap`` the nonce (24); ``_refresh.new_share`` the
  next server share (32); ``seal_delta`` the nonce (24). ``shares.split`` and ``seal``
  take their rng and nonce as arguments; the PIN's OPRF blind is passed to
  ``oprf.blind(rng=...)``;
- ``threshold.split_key``, ``split_data_key``, ``deal_refresh`` and ``threshold.evaluate``
  (the DLEQ proof's scalar) take the label's stream as their ``rng`` argument; its draws
  (64 bytes per scalar, reduced mod L by the library) are recorded as ``draws`` too.

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

from splitvault import Card, KdfProfile, Pin, _realm_api, _resplit, _wire
from splitvault._authorization import Authorization
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
    D_DELTA,
    D_DELTA_KEY,
    D_DEVICE_REFRESH,
    delta_key,
    seal_delta,
    seal_device_refresh,
)
from splitvault.crypto import dleq, envelope, oprf, shares, signing, threshold
from splitvault.crypto.encoding import encode, u64
from splitvault.crypto.kdf import argon2id, hkdf
from splitvault.crypto.sealing import seal
from splitvault.crypto.threshold import Share, add_shares
from splitvault.crypto.threshold_secret import (
    deal_refresh,
    recover_data_key,
    refresh_device_part,
    split_data_key,
)
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


# --- realms (t-of-n): _realm_protocol.py, _realm_refresh.py, the device and the gateway --


REALM_T, REALM_N = 2, 3
"""The default deployment: three realms, any two of which serve a payment."""
REALM_PAYMENT: dict[str, Any] = {"amount": 12500, "currency": "KRW", "merchant": "Corner Café",
                 "idempotency_key": "order-realm-0001"}
REALM_PIN = "realms/pin"
SERVING = (1, 2)
"""The realms that serve the story's payment; realm 3 catches up with its delta later."""
CATCH_UP = 3
"""The realm the evaluation at version 1 goes to, carrying its one delta."""


class Recorded:
    """A ``ShakeRng`` passed to the library as its ``rng`` argument, keeping its draws."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.rng = ShakeRng(label)
        self.draws: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        out = self.rng(n)
        self.draws.append(out)
        return out

    def row(self) -> dict[str, Any]:
        return {"rng": self.label, "draws": [h(d) for d in self.draws]}


def jsonable(value: Any) -> Any:
    """A message as JSON, nested messages and tuples included: bytes as hex."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return h(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


def share_rows(shares_: list[Share], public: bool = False) -> list[dict[str, Any]]:
    rows = []
    for s in shares_:
        row: dict[str, Any] = {"index": s.index, "value": h(s.value)}
        if public:
            row["public_share"] = h(threshold.public_key_share(s))
        rows.append(row)
    return rows


class Deployment:
    """Three realms' and a gateway's X25519 keys, and the refresh key of the payment."""

    def __init__(self) -> None:
        self.realm_secrets = {i: ShakeRng(f"realms/key/realm-{i}")(32)
                              for i in range(1, REALM_N + 1)}
        self.realm_keys = {i: envelope.public_key(s) for i, s in self.realm_secrets.items()}
        self.gateway_secret = ShakeRng("realms/key/gateway")(32)
        self.gateway_key = envelope.public_key(self.gateway_secret)
        self.refresh_secret = ShakeRng("realms/key/refresh")(32)
        self.refresh_key = envelope.public_key(self.refresh_secret)

    def keys(self) -> dict[str, Any]:
        def x(label: str, secret: bytes) -> dict[str, str]:
            return {"type": "x25519", "secret": h(secret),
                    "public": h(envelope.public_key(secret)), "from": label}

        return {
            "realms": [{"index": i, **x(f"realms/key/realm-{i}", s)}
                       for i, s in self.realm_secrets.items()],
            "gateway": x("realms/key/gateway", self.gateway_secret),
            "refresh": x("realms/key/refresh", self.refresh_secret),
        }


def realm_enrollment(story: Story, dep: Deployment, data_key: bytes, sealed_record: bytes,
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The device deals: k and its split, the PIN key under k, the data key's split, T_0,
    and one registration per realm (k_i || Sigma_i || verifier || T_0 sealed to it)."""
    cid = story.card_id
    oprf_key = scalar("realms/oprf-key")
    key_rng = Recorded("realms/oprf-key/split")
    key_shares = threshold.split_key(oprf_key, REALM_T, REALM_N, rng=key_rng)
    pin = pin_key_case(story, REALM_PIN, "123456", oprf_key=oprf_key)
    data_rng = Recorded("realms/data-key/split")
    part, sigmas = split_data_key(data_key, REALM_T, REALM_N, rng=data_rng)
    assert recover_data_key(part, sigmas[:REALM_T], REALM_T) == data_key
    token0 = ShakeRng("realms/token-0")(32)
    verifier = bytes.fromhex(pin["verifier"])
    registrations = []
    for k_i, sigma_i in zip(key_shares, sigmas, strict=True):
        i, realm_key = k_i.index, dep.realm_keys[k_i.index]
        plain = bytes(k_i.value + sigma_i.value + verifier + token0)
        label = f"envelope/realm-register/{i}"
        sealed = story.seal_to(label, dep.realm_secrets[i], plain, register_aad(cid, realm_key),
                               "register_aad(card_id, realm_key); plaintext k_i || Sigma_i "
                               "|| verifier || T_0")
        request = RealmRegister(cid, story.device_key, sealed, b"")
        signed = request.signed_bytes(realm_key)
        request = dataclasses.replace(request, signature=signing.sign(story.device_seed, signed))
        registrations.append({
            "realm": i, "realm_key": h(realm_key), "plaintext": h(plain),
            "aad": h(register_aad(cid, realm_key)), "envelope": label,
            "message": "RealmRegister", "fields": jsonable(request),
            "signed_bytes": h(signed), "signatures": {"signature": DEVICE},
            "commitment": h(share_commitment(cid, realm_key, sigma_i.value)),
        })
    case = {
        "oprf_key": {"from": "realms/oprf-key", "key": h(oprf_key), **key_rng.row(),
                     "key_shares": share_rows(key_shares, public=True)},
        "pin_key": pin,
        "data_key": {"key": h(data_key), **data_rng.row(), "device_part": h(part),
                     "realm_shares": share_rows(sigmas), "sealed_record": h(sealed_record),
                     "aad": h(card_record_aad(cid))},
        "token_0": {"from": "realms/token-0", "token": h(token0)},
        "registrations": registrations,
    }
    state = {"oprf_key": oprf_key, "key_shares": key_shares, "part": part, "sigmas": sigmas,
             "token0": token0, "pin": pin, "data_key": data_key, "sealed_record": sealed_record}
    return case, state


def realm_evaluate_row(story: Story, realm: int, realm_key: bytes, request: RealmEvaluate,
                       token: bytes) -> tuple[RealmEvaluate, dict[str, Any]]:
    """A RealmEvaluate signed by the device for one realm, with its possession MAC."""
    signed = request.signed_bytes(realm_key)
    request = dataclasses.replace(request, signature=signing.sign(story.device_seed, signed),
                                  possession=_resplit.possession_mac(token, None, signed))
    return request, {
        "realm": realm, "realm_key": h(realm_key), "message": "RealmEvaluate",
        "fields": jsonable(request), "signed_bytes": h(signed),
        "signatures": {"signature": DEVICE},
        "possession": {"token": h(token), "dh": None, "message": h(signed),
                       "mac": h(request.possession)},
    }


def realm_payment(story: Story, dep: Deployment, state: dict[str, Any],
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Realms 1 and 2 evaluate (DLEQ proofs), the device combines, the PIN key signs a
    release for each, each seals Sigma_i to the gateway; the device's GatewayAuthorize."""
    cid, pay = story.card_id, REALM_PAYMENT
    pin, key_shares = state["pin"], state["key_shares"]
    blinded = bytes.fromhex(pin["blinded"])
    evaluations, releases, shares_out = [], [], []
    evaluated: dict[int, bytes] = {}
    realm_shares = []
    pin_seed = bytes.fromhex(pin["seed"])
    for i in SERVING:
        realm_key = dep.realm_keys[i]
        request = RealmEvaluate(cid, ShakeRng(f"realms/evaluate/{i}/nonce")(16), TIMESTAMP_MS,
                                blinded, b"")
        request, row = realm_evaluate_row(story, i, realm_key, request, state["token0"])
        proof_rng = Recorded(f"realms/evaluate/{i}/proof")
        ev = threshold.evaluate(key_shares[i - 1], blinded, rng=proof_rng)
        assert dleq.verify_proof(threshold.public_key_share(key_shares[i - 1]), [blinded],
                                 [ev.element], ev.proof)
        evaluated[i] = ev.element
        challenge_id = ShakeRng(f"realms/challenge/{i}/id")(16).hex()
        challenge_nonce = ShakeRng(f"realms/challenge/{i}/nonce")(32)
        evaluations.append({
            "request": row, "key_share": h(key_shares[i - 1].value),
            "public_share": h(threshold.public_key_share(key_shares[i - 1])),
            "blinded": h(blinded), "proof": {**proof_rng.row(), "evaluated": h(ev.element),
                                             "proof": h(ev.proof)},
            "challenge_id": challenge_id, "challenge_nonce": h(challenge_nonce),
        })
        release = RealmRelease(cid, challenge_id, pay["amount"], pay["currency"],
                               pay["merchant"], pay["idempotency_key"], dep.gateway_key, b"")
        signed = release.signed_bytes(realm_key, challenge_nonce)
        signature = signing.sign(pin_seed, signed)
        label = f"envelope/realm-release/{i}"
        release = dataclasses.replace(release, pin_signature=story.seal_to(
            label, dep.realm_secrets[i], signature, release_proof_aad(cid, realm_key),
            "release_proof_aad(card_id, realm_key); plaintext the PIN key's signature"))
        releases.append({
            "realm": i, "realm_key": h(realm_key), "message": "RealmRelease",
            "fields": jsonable(release), "nonce": h(challenge_nonce), "signed_bytes": h(signed),
            "signatures": {"pin_signature": {"key": REALM_PIN, "sealed_to_realm": i,
                                             "envelope": label}},
            "pin_signature_plain": h(signature),
            "aad": h(release_proof_aad(cid, realm_key)),
        })
        aad = share_aad(cid, realm_key, dep.gateway_key, 0, pay["amount"], pay["currency"],
                        pay["merchant"], pay["idempotency_key"])
        sigma = state["sigmas"][i - 1]
        label = f"envelope/realm-share/{i}"
        sealed = story.seal_to(label, dep.gateway_secret, bytes(sigma.value), aad,
                               "share_aad(card_id, realm_key, gateway_key, version, amount, "
                               "currency, merchant, idempotency_key); plaintext Sigma_i")
        commitment = share_commitment(cid, realm_key, sigma.value)
        realm_shares.append(RealmShare(i, realm_key, sealed, commitment))
        shares_out.append({
            "realm": i, "realm_key": h(realm_key), "sigma": h(sigma.value), "version": 0,
            "aad": h(aad), "envelope": label, "sealed": h(sealed),
            "commitment_message": h(encode(D_SHARE_COMMITMENT, cid.encode(), realm_key,
                                           bytes(sigma.value))),
            "commitment": h(commitment),
        })
    combined = threshold.combine(evaluated)
    whole = oprf.blind_evaluate(state["oprf_key"], blinded)
    assert combined == whole
    x = bytes.fromhex(pin["pin_input"])
    output = bytes(oprf.finalize(x, bytes.fromhex(pin["blind"]), combined))
    assert output == bytes(oprf.evaluate(state["oprf_key"], x)) == bytes.fromhex(
        pin["oprf_output"])
    lambdas = threshold.lagrange_coefficients(list(SERVING))
    combination = {
        "indices": list(SERVING), "lagrange": {str(i): h(c) for i, c in lambdas.items()},
        "combined": h(combined), "whole_key_evaluated": h(whole), "oprf_output": h(output),
    }
    members = tuple(RealmMember(i, dep.realm_keys[i]) for i in range(1, REALM_N + 1))
    env_aad = gateway_envelope_aad(cid, dep.gateway_key, pay["idempotency_key"])
    plain = bytes(state["part"]) + state["sealed_record"]
    env = story.seal_to("envelope/gateway-authorize", dep.gateway_secret, plain, env_aad,
                        "gateway_envelope_aad(card_id, gateway_key, idempotency_key); "
                        "plaintext D || sealed card record")
    auth = GatewayAuthorize(cid, story.device_key, pay["amount"], pay["currency"],
                            pay["merchant"], pay["idempotency_key"], env, tuple(realm_shares),
                            b"", 0, dep.refresh_key, members,
                            ShakeRng("realms/gateway/nonce")(16), TIMESTAMP_MS)
    signed = auth.signed_bytes(dep.gateway_key)
    auth = dataclasses.replace(auth, signature=signing.sign(story.device_seed, signed))
    case = {
        "payment": dict(pay), "evaluations": evaluations, "combination": combination,
        "releases": releases, "shares": shares_out,
        "gateway_authorize": {
            "message": "GatewayAuthorize", "fields": jsonable(auth),
            "signed_for": h(dep.gateway_key), "signed_bytes": h(signed),
            "signatures": {"signature": DEVICE}, "envelope": "envelope/gateway-authorize",
            "envelope_aad": h(env_aad), "envelope_plaintext": h(plain),
        },
    }
    return case, {"authorize": auth, "evaluated": evaluated}


def realm_resplit(story: Story, dep: Deployment, state: dict[str, Any],
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The gateway's re-split after the approval: rho and its shares, T_1, rho || T_1
    sealed to the refresh key, a delta per realm, every realm's next commitment; the
    device's D' = D - rho."""
    cid, version = story.card_id, 1
    rho_rng = Recorded("realms/resplit/rho")
    fresh = deal_refresh(REALM_T, REALM_N, rng=rho_rng)
    token1 = ShakeRng("realms/resplit/token")(32)
    plain = bytes(fresh.device_delta) + token1
    device_aad = encode(D_DEVICE_REFRESH, cid.encode(), u64(version))
    refresh = story.seal_to("envelope/realm-refresh", dep.refresh_secret, plain, device_aad,
                            "encode(D_DEVICE_REFRESH, card_id, u64(version)); plaintext "
                            "rho || T")
    with injected(_replay(story, "envelope/realm-refresh")):
        assert seal_device_refresh(dep.refresh_key, cid, version, plain) == refresh
    opened = [state["sigmas"][i - 1] for i in SERVING]
    deltas: list[RealmDelta] = []
    delta_rows: list[dict[str, Any]] = []
    next_rows: list[dict[str, Any]] = []
    nexts: dict[int, Share] = {}
    for i in range(1, REALM_N + 1):
        realm_key, rho_i = dep.realm_keys[i], fresh.share_deltas[i - 1]
        now = threshold.share_at(opened, REALM_T, i)
        assert now.value == state["sigmas"][i - 1].value
        nxt = add_shares(now, rho_i)
        nexts[i] = nxt
        commitment = share_commitment(cid, realm_key, nxt.value)
        next_rows.append({"realm": i, "realm_key": h(realm_key),
                          "from": "opened" if i in SERVING else "share_at",
                          "current": h(now.value), "rho_i": h(rho_i.value),
                          "next": h(nxt.value), "commitment": h(commitment)})
        step = bytes(rho_i.value) + token1
        shared = envelope.x25519(dep.gateway_secret, realm_key)
        key_message = encode(D_DELTA_KEY, cid.encode(), realm_key, dep.gateway_key,
                             u64(version), u64(0))  # floor 0: the card's first enrollment
        key = delta_key(dep.gateway_secret, realm_key, cid, realm_key, dep.gateway_key,
                        version)
        with injected(ShakeRng(f"realms/delta/{i}")) as draws:
            sealed = seal_delta(dep.gateway_secret, dep.gateway_key, realm_key, cid, version,
                                step)
        deltas.append(RealmDelta(realm_key, version, dep.gateway_key, sealed))
        delta_rows.append({
            "realm": i, "realm_key": h(realm_key), "gateway_key": h(dep.gateway_key),
            "version": version, "shared_secret": h(shared), "key_message": h(key_message),
            "delta_key": h(key), "aad": h(encode(D_DELTA, cid.encode(), realm_key,
                                                 dep.gateway_key, u64(version), u64(0))),
            "plaintext": h(step), "draws": [h(d) for d in draws], "sealed": h(sealed),
            "encoded": h(deltas[-1].encoded()),
        })
    part_next = refresh_device_part(state["part"], fresh.device_delta)
    for pair in ((1, 2), (1, 3), (2, 3)):
        assert recover_data_key(part_next, [nexts[i] for i in pair], REALM_T) == state[
            "data_key"]
    commitments = tuple(RealmCommitment(dep.realm_keys[r["realm"]], bytes.fromhex(
        r["commitment"])) for r in next_rows)
    case = {
        "version": version, **rho_rng.row(), "rho": h(fresh.device_delta),
        "rho_shares": share_rows(fresh.share_deltas),
        "token": {"from": "realms/resplit/token", "token": h(token1)},
        "device_refresh": {"aad": h(device_aad), "plaintext": h(plain),
                           "envelope": "envelope/realm-refresh", "sealed": h(refresh)},
        "deltas": delta_rows, "next_shares": next_rows,
        "device_part": h(state["part"]), "device_part_next": h(part_next),
    }
    return case, {"deltas": tuple(deltas), "commitments": commitments, "token1": token1,
                  "refresh": refresh, "nexts": nexts, "part_next": part_next}


def _replay(story: Story, label: str) -> Callable[[int], bytes]:
    """The recorded draws of ``label``'s envelope, served in order."""
    queue = [bytes.fromhex(d) for d in
             next(e for e in story.envelopes if e["label"] == label)["draws"]]
    return lambda n: queue.pop(0)


def realms_case(story: Story, data_key: bytes, sealed_record: bytes) -> dict[str, Any]:
    """One 2-of-3 card's enrollment, payment, re-split and the next evaluation."""
    dep = Deployment()
    enrollment, state = realm_enrollment(story, dep, data_key, sealed_record)
    payment, paid = realm_payment(story, dep, state)
    resplit, split_state = realm_resplit(story, dep, state)
    pin = state["pin"]
    x = bytes.fromhex(pin["pin_input"])
    blind_v1 = scalar("realms/pin/blind-v1")
    _, blinded_v1 = oprf.blind(x, rng=lambda: blind_v1)
    delta = split_state["deltas"][CATCH_UP - 1]
    request = RealmEvaluate(story.card_id, ShakeRng("realms/evaluate-v1/nonce")(16),
                            TIMESTAMP_MS, blinded_v1, b"", 1, (delta,))
    request, v1 = realm_evaluate_row(story, CATCH_UP, dep.realm_keys[CATCH_UP], request,
                                     split_state["token1"])
    v1["blind"] = {"from": "realms/pin/blind-v1", "blind": h(blind_v1),
                   "blinded": h(blinded_v1)}
    # The same step carried alone (a realm far behind is brought up this way first).
    catch_up = RealmCatchUp(story.card_id, ShakeRng("realms/catch-up/nonce")(16),
                            TIMESTAMP_MS, (delta,), b"")
    signed_catch_up = catch_up.signed_bytes(dep.realm_keys[CATCH_UP])
    catch_up = dataclasses.replace(catch_up, signature=signing.sign(story.device_seed,
                                                                    signed_catch_up))
    catch_up_row = {"realm": CATCH_UP, "realm_key": h(dep.realm_keys[CATCH_UP]),
                    "message": "RealmCatchUp", "fields": jsonable(catch_up),
                    "signed_bytes": h(signed_catch_up), "signatures": {"signature": DEVICE}}
    authorization = Authorization(True, "000123", None, "•••• 1111", REALM_PAYMENT["amount"],
                                  REALM_PAYMENT["currency"], REALM_PAYMENT["merchant"],
                                  REALM_PAYMENT["idempotency_key"],
                                  datetime.datetime(2026, 1, 1, 0, 2, tzinfo=datetime.UTC))
    reply = GatewayReply(authorization, 1, split_state["refresh"], split_state["deltas"],
                         split_state["commitments"])
    wire = [{"message": name, "type": type(value).__name__, "fields": jsonable(value),
             "json": _wire.dumps(getattr(_realm_api, name), value).decode("utf-8")}
            for name, value in (("REALM_EVALUATE", request),
                                ("GATEWAY_AUTHORIZE", paid["authorize"]),
                                ("GATEWAY_REPLY", reply))]
    return {
        "threshold": REALM_T, "realms": REALM_N, "card_id": story.card_id,
        "device_key": h(story.device_key), "keys": dep.keys(), **enrollment,
        **payment, "resplit": resplit, "evaluate_next": v1, "catch_up": catch_up_row,
        "wire": wire,
    }


def realm_must_fail(story: Story, realms: dict[str, Any]) -> list[dict[str, Any]]:
    """Realm rows a port must refuse: deltas, released shares and the device's refresh
    opened out of their binding, and a stale part with fresh shares."""
    keys = realms["keys"]
    realm = {r["index"]: r for r in keys["realms"]}
    delta = realms["resplit"]["deltas"][CATCH_UP - 1]
    gateway = keys["gateway"]

    def open_delta_row(why: str, at: int, **change: Any) -> dict[str, Any]:
        row = {"operation": "open_delta", "why": why, "realm_secret": realm[at]["secret"],
               "realm_key": realm[at]["public"], "gateway_key": delta["gateway_key"],
               "card_id": story.card_id, "version": delta["version"],
               "sealed": delta["sealed"], "error": "AuthenticationFailed"}
        return {**row, **change}

    share = realms["shares"][0]
    pay = realms["payment"]

    def open_share_row(why: str, **change: Any) -> dict[str, Any]:
        row = {"operation": "open_share", "why": why, "gateway_secret": gateway["secret"],
               "card_id": story.card_id, "realm_key": share["realm_key"],
               "gateway_key": gateway["public"], "version": share["version"], **pay,
               "sealed": share["sealed"], "error": "AuthenticationFailed"}
        return {**row, **change}

    refresh = realms["resplit"]["device_refresh"]
    next_shares = realms["resplit"]["next_shares"]
    old_shares = realms["data_key"]["realm_shares"]
    evaluate = realms["evaluate_next"]
    other_realm = realm[1]["public"]
    return [
        open_delta_row("delta for version 1 opened as version 2", CATCH_UP, version=2),
        open_delta_row("realm 3's delta opened by realm 1", 1),
        open_delta_row("delta claimed from another gateway", CATCH_UP,
                       gateway_key=h(story.server_key)),
        open_delta_row("delta byte flipped", CATCH_UP, sealed=_flip(delta["sealed"], 30)),
        open_share_row("share opened with another payment's amount", amount=pay["amount"] + 1),
        open_share_row("share opened with another payment's idempotency key",
                       idempotency_key="order-realm-0002"),
        open_share_row("share released at version 0 opened as version 1", version=1),
        open_share_row("share opened as another realm's", realm_key=realms["shares"][1][
            "realm_key"]),
        {"operation": "open_device_refresh", "why": "rho for version 1 opened as version 2",
         "secret": keys["refresh"]["secret"], "card_id": story.card_id, "version": 2,
         "sealed": refresh["sealed"], "error": "AuthenticationFailed"},
        {"operation": "open_device_refresh", "why": "rho opened for another card",
         "secret": keys["refresh"]["secret"], "card_id": "0" * 32, "version": 1,
         "sealed": refresh["sealed"], "error": "AuthenticationFailed"},
        {"operation": "recover_data_key", "why": "stale part: D with the version-1 shares",
         "device_part": realms["resplit"]["device_part"],
         "shares": [{"index": r["realm"], "value": r["next"]} for r in next_shares[:2]],
         "error": "DecodeError"},
        {"operation": "recover_data_key", "why": "D' with the version-0 shares",
         "device_part": realms["resplit"]["device_part_next"], "shares": old_shares[:2],
         "error": "DecodeError"},
        {"operation": "verify", "why": "realm 3's evaluate replayed to realm 1",
         "public": story.device_key.hex(),
         "message": h(_build_realm_evaluate(evaluate["fields"]).signed_bytes(
             bytes.fromhex(other_realm))),
         "signature": evaluate["fields"]["signature"], "error": "AuthenticationFailed"},
    ]


def _build_realm_evaluate(f: dict[str, Any]) -> RealmEvaluate:
    return RealmEvaluate(
        f["card_id"], bytes.fromhex(f["nonce"]), f["timestamp"], bytes.fromhex(f["blinded"]),
        bytes.fromhex(f["signature"]), f["share_version"],
        tuple(RealmDelta(bytes.fromhex(d["realm_key"]), d["version"],
                         bytes.fromhex(d["gateway_key"]), bytes.fromhex(d["sealed"]))
              for d in f["deltas"]), bytes.fromhex(f["possession"]))


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
            "realms: threshold.split_key, split_data_key, deal_refresh and "
            "threshold.evaluate take the label's stream as rng (draws: 64 bytes per scalar); "
            "seal_delta draws its nonce (24); the realm card is the story's card_id",
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
    doc["realms"] = realms_case(story, data_key, bytes.fromhex(cards[0]["sealed"]))
    doc["envelopes"] = story.envelopes
    doc["must_fail"] = must_fail(story, doc) + realm_must_fail(story, doc["realms"])
    return doc


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
