"""The whole splitvault flow in a temporary folder, showing what each side holds.

    python examples/quickstart.py
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import splitvault as sv
from splitvault.hazmat import scan_files, sqlite_files


def show_rows(title: str, db: Path, query: str) -> None:
    print(f"\n{title}  ({db.name})")
    conn = sqlite3.connect(db)
    cursor = conn.execute(query)
    names = [d[0] for d in cursor.description]
    for row in cursor:
        for name, value in zip(names, row, strict=True):
            shown = value.hex()[:48] + ("…" if len(value) > 24 else "") \
                if isinstance(value, bytes) else value
            print(f"  {name:15} {shown}")
    conn.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server = sv.ShareServer.open(folder / "server.db")
        # TEST_ONLY keeps the demo instant; real devices use the default INTERACTIVE.
        device = sv.Device.open(folder / "device.db", server=server,
                                kdf=sv.KdfProfile.TEST_ONLY)
        card = sv.Card(pan="4111 1111 1111 1111", expiry="12/30", holder="KIM MINSU")
        with sv.Pin.from_digits("739184") as pin:
            card_id = device.enroll(card, pin)
            print(f"enrolled {card!r} as card {card_id}")
            print("wallet:", device.cards())

            auth = device.authorize(card_id, pin, amount=12000, currency="KRW",
                                    merchant="Gift Shop", idempotency_key="order-1")
            print(f"\npaid: approved={auth.approved} code={auth.approval_code} "
                  f"{auth.masked_pan} {auth.amount} {auth.currency} at {auth.merchant}")
            again = device.authorize(card_id, pin, amount=12000, currency="KRW",
                                     merchant="Gift Shop", idempotency_key="order-1")
            print(f"retry with the same idempotency key: same result={again == auth}, "
                  f"acquirer calls={len(server.acquirer.calls)}")  # type: ignore[attr-defined]

            with sv.Pin.from_digits("580247") as wrong:
                try:
                    device.authorize(card_id, wrong, amount=500, currency="KRW",
                                     merchant="Cafe", idempotency_key="order-2")
                except sv.WrongPin as exc:
                    print(f"refused: {exc}")

        show_rows("what the SERVER holds for the card", folder / "server.db",
                  "SELECT card_id, device_key, verifier, oprf_key, share, guesses_used, locked "
                  "FROM cards")
        show_rows("what the DEVICE holds for the card", folder / "device.db",
                  "SELECT card_id, brand, last4, expiry, device_share, sealed_record, salt "
                  "FROM cards")
        files = sqlite_files(folder / "server.db", folder / "device.db")
        findings = scan_files(files, {"PAN": "4111111111111111", "holder": "KIM MINSU"})
        print(f"\nscanned {len(files)} files (databases, WAL, key file) for the PAN and the "
              f"holder name in ASCII, UTF-16, hex, base64 and BCD: "
              f"{'found ' + str(findings) if findings else 'nothing found'}")
        print(f"audit log: {server.verify_audit()}")
        device.delete(card_id)
        print(f"deleted: device cards={device.cards()}")
        device.close()
        server.close()


if __name__ == "__main__":
    main()
