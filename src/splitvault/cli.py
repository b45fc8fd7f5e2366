"""The ``splitvault`` command: demo, serve, keys, audit, bench, attack.

Each subcommand imports what it needs only when it runs, so ``splitvault keys`` does
not pay for Textual and ``splitvault demo`` does not pay for uvicorn.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ._errors import VaultError

__all__ = ["main"]


def _keys_generate(args: argparse.Namespace) -> int:
    from .server import Kek

    kek = Kek.generate()
    kek.write(args.out)
    print(f"wrote key-encryption key {kek.kid_hex} to {args.out} (mode 0600)")
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    from .server import Kek, ShareServer

    kek_file = Path(args.kek_file)
    pending = Path(f"{kek_file}.new")
    with ShareServer.open(args.db, kek_file=kek_file) as server:
        old = server._kek.kid_hex
        new = Kek.generate()
        new.write(pending)
        count = server.rotate_kek(new)
    # The database now needs the new key: put it in place. Should this rename not
    # happen (a crash), the next open finds <file>.new and finishes it.
    os.replace(pending, kek_file)
    _fsync_dir(kek_file.parent)
    print(f"re-wrapped {count} secrets: key {old} retired, key {new.kid_hex} in {kek_file}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from .server import ShareServer

    with ShareServer.open(args.db, kek_file=args.kek_file) as server:
        report = server.verify_audit()
    print(f"audit log verified: {report.entries} entries, head {report.head}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ._bench import run_all

    result = run_all(quick=args.quick, http=not args.no_http, keypad=not args.no_keypad)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        from ._bench import render_all

        print(render_all(result))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .tui import run_demo

    return run_demo(data_dir=args.data_dir, server=args.server, pin_sha256=args.pin_sha256)


def _attack(args: argparse.Namespace) -> int:
    from ._attack.runner import main as attack_main

    return int(attack_main(args))


def _serve(args: argparse.Namespace) -> int:
    from .server import _serve

    return _serve.run(args)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splitvault",
        description="Split-key payment card vault: device share + server share, "
        "OPRF-hardened PIN, exactly-once authorization.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="the terminal demo (wallet, keypad, security lab)")
    demo.add_argument("--data-dir", type=Path, default=None,
                      help="where the demo keeps its device and server files "
                      "(default: your user data directory)")
    demo.add_argument("--server", default=None, help="use a running share server at URL")
    demo.add_argument("--pin-sha256", default=None,
                      help="SHA-256 fingerprint of the server's TLS certificate to pin")
    demo.set_defaults(func=_demo)

    serve = sub.add_parser("serve", help="run the share server over HTTP")
    from .server import _serve as serve_module

    serve_module.add_arguments(serve)
    serve.set_defaults(func=_serve)

    keys = sub.add_parser("keys", help="manage the server's key-encryption key")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    gen = keys_sub.add_parser("generate", help="write a new key-encryption key file")
    gen.add_argument("--out", required=True, type=Path, help="key file to create (mode 0600)")
    gen.set_defaults(func=_keys_generate)
    rot = keys_sub.add_parser("rotate", help="re-wrap every stored secret under a new key "
                              "and retire the old one")
    rot.add_argument("--db", required=True, type=Path, help="the server database")
    rot.add_argument("--kek-file", required=True, type=Path, help="the current key file; "
                     "replaced by the new key when the rotation has committed")
    rot.set_defaults(func=_keys_rotate)

    audit = sub.add_parser("audit", help="verify the server's hash-chained audit log")
    audit.add_argument("--db", required=True, type=Path)
    audit.add_argument("--kek-file", required=True, type=Path)
    audit.set_defaults(func=_audit)

    bench = sub.add_parser("bench", help="measure throughput and latency against the "
                           "crypto floor")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    bench.add_argument("--no-http", action="store_true", help="skip the HTTP benchmark")
    bench.add_argument("--no-keypad", action="store_true", help="skip the keypad benchmark")
    bench.set_defaults(func=_bench)

    attack = sub.add_parser("attack", help="run the attack suite and print what each "
                            "attacker got")
    attack.add_argument("--server", default=None,
                        help="run the network-reachable attacks against this deployment")
    attack.add_argument("--pin-sha256", default=None,
                        help="SHA-256 fingerprint of the server's TLS certificate")
    attack.add_argument("--json", action="store_true", help="print JSON")
    attack.add_argument("--slow", action="store_true",
                        help="also run attacks that wait out real timeouts (challenge expiry "
                        "against a remote server)")
    attack.add_argument("--only", default=None,
                        help="comma-separated scenario numbers or keys, e.g. 1,4,stranger")
    attack.set_defaults(func=_attack)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except VaultError as exc:
        print(f"splitvault: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
