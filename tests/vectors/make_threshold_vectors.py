"""Write tests/vectors/threshold.json: known answers for the threshold glue (issue 13).

    PYTHONPATH=src python tests/vectors/make_threshold_vectors.py

Randomness is injected, so a port (Kotlin, Swift) can replay every case: each case names a
``label``, and its rng is the SHAKE-256 output stream of that label (ASCII), read front to
back, ``n`` bytes per call. Every random scalar is 64 stream bytes reduced mod L (libsodium's
``crypto_core_ristretto255_scalar_reduce``), drawn in this order: for each shared scalar
(``width`` of them, left to right) the polynomial's coefficients a_1 .. a_{t-1}; a key split
that hits a zero share draws a whole new polynomial (never happens in these cases). The DLEQ
proofs' scalar r comes from a separate stream, ``label + "/proof/" + index``.

The OPRF case reuses RFC 9497 Appendix A.1.1 (mode 0): its key skSm, Input and Blind, so the
combined evaluation and output must equal the RFC's EvaluationElement and Output.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

from splitvault.crypto import dleq, oprf, threshold, threshold_secret
from splitvault.crypto.threshold import Share

OUT = Path(__file__).resolve().parent / "threshold.json"
RFC9497 = Path(__file__).resolve().parent / "rfc9497_ristretto255_sha512.json"


class ShakeRng:
    """rng(n): the next n bytes of SHAKE-256(label)."""

    def __init__(self, label: str) -> None:
        self.label = label.encode("ascii")
        self.offset = 0

    def __call__(self, n: int) -> bytes:
        out = hashlib.shake_256(self.label).digest(self.offset + n)[self.offset :]
        self.offset += n
        return out


def _shares(shares: list[Share]) -> list[dict[str, Any]]:
    return [{"index": s.index, "value": s.value.hex()} for s in shares]


def key_split_case(label: str, key: bytes, t: int, n: int) -> dict[str, Any]:
    shares = threshold.split_key(key, t, n, rng=ShakeRng(label))
    return {
        "label": label, "threshold": t, "shares": n, "key": key.hex(),
        "key_shares": _shares(shares),
        "public_key_shares": {str(s.index): threshold.public_key_share(s).hex() for s in shares},
    }


def lagrange_case(indices: list[int]) -> dict[str, Any]:
    coefficients = threshold.lagrange_coefficients(indices)
    return {"indices": indices, "coefficients": [coefficients[i].hex() for i in indices]}


def oprf_case(label: str, t: int, n: int) -> dict[str, Any]:
    suite = next(s for s in json.loads(RFC9497.read_text())["suites"] if s["mode"] == 0)
    vector = suite["vectors"][0]
    key, pin = bytes.fromhex(suite["skSm"]), bytes.fromhex(vector["Input"])
    case = key_split_case(label, key, t, n)
    shares = threshold.split_key(key, t, n, rng=ShakeRng(label))
    blind, blinded = oprf.blind(pin, rng=lambda: bytes.fromhex(vector["Blind"]))
    evaluations = [
        threshold.evaluate(s, blinded, rng=ShakeRng(f"{label}/proof/{s.index}")) for s in shares
    ]
    public = {s.index: threshold.public_key_share(s) for s in shares}
    combinations = []
    for subset in itertools.combinations(evaluations, t):
        combined = threshold.combine_verified(blinded, list(subset), public, t)
        combinations.append({
            "indices": [e.index for e in subset], "combined": combined.hex(),
            "output": oprf.finalize(pin, blind, combined).hex(),
        })
    case.update({
        "input": pin.hex(), "blind": bytes(blind).hex(), "blinded": blinded.hex(),
        "evaluations": [
            {"index": e.index, "element": e.element.hex(), "proof": e.proof.hex()}
            for e in evaluations
        ],
        "combinations": combinations,
        "rfc_evaluation_element": vector["EvaluationElement"], "rfc_output": vector["Output"],
    })
    return case


def secret_case(label: str, t: int, n: int) -> dict[str, Any]:
    secret = ShakeRng(label + "/secret")(32)
    shares = threshold_secret.split_secret(secret, t, n, rng=ShakeRng(label))
    return {
        "label": label, "threshold": t, "shares": n, "secret": secret.hex(),
        "encoded": threshold_secret.encode_secret(secret).hex(), "secret_shares": _shares(shares),
    }


def data_key_case(label: str, t: int, n: int) -> dict[str, Any]:
    """split_data_key, then one deal_refresh, both from one stream (device part first)."""
    key = ShakeRng(label + "/key")(32)
    rng = ShakeRng(label)
    device, shares = threshold_secret.split_data_key(key, t, n, rng=rng)
    refresh = threshold_secret.deal_refresh(t, n, rng=rng)
    new_device = threshold_secret.refresh_device_part(device, refresh.device_delta)
    new_shares = [threshold_secret.refresh_share(a, b)
                  for a, b in zip(shares, refresh.share_deltas, strict=True)]
    return {
        "label": label, "threshold": t, "shares": n, "key": key.hex(),
        "device_part": device.hex(), "realm_shares": _shares(shares),
        "refresh": {
            "device_delta": refresh.device_delta.hex(),
            "share_deltas": _shares(refresh.share_deltas),
            "device_part": new_device.hex(), "realm_shares": _shares(new_shares),
        },
    }


def proof_case(label: str) -> dict[str, Any]:
    """A bare DLEQ proof for a realm key share, outside the RFC's own key."""
    k = Share(1, bytearray(ShakeRng(label + "/key")(31) + b"\x00"))  # below 2^248 < L
    blinded = oprf.hash_to_group(label.encode("ascii"))
    element = oprf.blind_evaluate(k.value, blinded)
    pk = threshold.public_key_share(k)
    proof = dleq.generate_proof(k.value, pk, [blinded], [element], rng=ShakeRng(label))
    return {"label": label, "key": k.value.hex(), "public_key": pk.hex(),
            "blinded": blinded.hex(), "element": element.hex(), "proof": proof.hex()}


def _flip(hex_bytes: str, at: int) -> str:
    raw = bytearray.fromhex(hex_bytes)
    raw[at] ^= 1
    return raw.hex()


def must_fail(oprf_vectors: dict[str, Any], proof: dict[str, Any], data_key: dict[str, Any]
              ) -> list[dict[str, Any]]:
    """Rows a port must refuse, each with the error splitvault raises."""
    ev = oprf_vectors["evaluations"]
    L = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010"  # the group order
    s_plus_l = (int.from_bytes(bytes.fromhex(proof["proof"][64:]), "little")
                + int.from_bytes(bytes.fromhex(L), "little")).to_bytes(32, "little").hex()
    return [
        {"operation": "verify_proof", "why": "proof byte flipped",
         **proof, "proof": _flip(proof["proof"], 63), "error": "false"},
        {"operation": "verify_proof", "why": "challenge byte flipped",
         **proof, "proof": _flip(proof["proof"], 0), "error": "false"},
        {"operation": "verify_proof", "why": "s + L, the same scalar non-canonically encoded",
         **proof, "proof": proof["proof"][:64] + s_plus_l, "error": "false"},
        {"operation": "verify_proof", "why": "evaluation not under this key",
         **proof, "element": proof["blinded"], "error": "false"},
        {"operation": "combine_verified", "why": "realm 2 returns realm 3's element",
         "label": oprf_vectors["label"], "indices": [1, 2],
         "replace": {"2": {"element": ev[2]["element"], "proof": ev[1]["proof"]}},
         "error": "InvalidEvaluation [2]"},
        {"operation": "combine_verified", "why": "realm 1 returns realm 2's answer, proof too",
         "label": oprf_vectors["label"], "indices": [1, 3],
         "replace": {"1": {"element": ev[1]["element"], "proof": ev[1]["proof"]}},
         "error": "InvalidEvaluation [1]"},
        {"operation": "recover_data_key", "why": "device part from before the re-split",
         "device_part": data_key["device_part"],
         "realm_shares": data_key["refresh"]["realm_shares"][:2], "threshold": 2,
         "error": "DecodeError"},
        {"operation": "recover_data_key", "why": "one realm share from before the re-split",
         "device_part": data_key["refresh"]["device_part"],
         "realm_shares": [data_key["realm_shares"][0], data_key["refresh"]["realm_shares"][1]],
         "threshold": 2, "error": "DecodeError"},
        {"operation": "lagrange_coefficients", "why": "duplicate index", "indices": [1, 1],
         "error": "ThresholdError"},
        {"operation": "lagrange_coefficients", "why": "zero index", "indices": [0, 1],
         "error": "ThresholdError"},
        {"operation": "lagrange_coefficients", "why": "index above 255", "indices": [1, 256],
         "error": "ThresholdError"},
        {"operation": "split", "why": "threshold above share count", "threshold": 4,
         "shares": 3, "error": "ThresholdError"},
        {"operation": "split", "why": "threshold zero", "threshold": 0, "shares": 3,
         "error": "ThresholdError"},
    ]


def build() -> dict[str, Any]:
    oprf_2_of_3 = oprf_case("oprf/2-of-3", 2, 3)
    proof = proof_case("dleq/one")
    data_key = data_key_case("data-key/2-of-3", 2, 3)
    return {
        "description": (
            "splitvault threshold glue (src/splitvault/crypto/threshold*.py, dleq.py); made by "
            "tests/vectors/make_threshold_vectors.py, whose docstring defines the rng"
        ),
        "key_split": [key_split_case("key-split/2-of-3", ShakeRng("key-split/key")(31) + b"\x00",
                                     2, 3)],
        "lagrange": [lagrange_case(ix) for ix in ([1], [1, 2], [2, 3], [1, 3, 5], [5, 4, 2, 1])],
        "threshold_oprf": [oprf_2_of_3, oprf_case("oprf/3-of-5", 3, 5)],
        "dleq": [proof],
        "secret_split": [secret_case("secret/2-of-3", 2, 3)],
        "data_key": [data_key],
        "must_fail": must_fail(oprf_2_of_3, proof, data_key),
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {OUT}")
