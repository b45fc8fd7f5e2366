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

from . import _extras
from ._errors import VaultError

__all__ = ["main"]

_SERVER_NEEDS = (("starlette", "server"), ("uvicorn", "server"))
_CLIENT_NEEDS = (("httpx", "client"),)


def _env(name: str) -> str | None:
    """The ``SPLITVAULT_<name>`` variable: every subcommand reads the same ones as
    ``serve`` (``SPLITVAULT_DB``, ``SPLITVAULT_KEK_FILE``, ...); a flag wins."""
    return os.environ.get(f"SPLITVAULT_{name}") or None


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("splitvault")
    except metadata.PackageNotFoundError:  # running from a source tree, not installed
        from . import __version__

        return __version__


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
    needs: list[tuple[str, str]] = []
    if not args.no_keypad:
        needs.append(("textual", "demo"))
    if not args.no_http:
        needs += [*_SERVER_NEEDS, *_CLIENT_NEEDS]
    _extras.require_all("splitvault bench", *needs)
    from ._bench import run_all

    result = run_all(quick=args.quick, http=not args.no_http, keypad=not args.no_keypad)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        from ._bench import render_all

        print(render_all(result))
    return 0


def _demo(args: argparse.Namespace) -> int:
    needs = [("textual", "demo"), ("platformdirs", "demo")]
    if args.server is not None:
        needs.append(("httpx", "demo"))
    _extras.require_all("splitvault demo", *needs)
    from .tui import run_demo

    return run_demo(data_dir=args.data_dir, server=args.server, pin_sha256=args.pin_sha256)


def _attack(args: argparse.Namespace) -> int:
    # In process the suite also attacks the HTTP app through the real client.
    _extras.require_all("splitvault attack", *_SERVER_NEEDS, *_CLIENT_NEEDS)
    from ._attack.runner import main as attack_main

    return int(attack_main(args))


def _serve(args: argparse.Namespace) -> int:
    _extras.require_all("splitvault serve", *_SERVER_NEEDS)
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
    parser.add_argument("--version", action="version", version=f"splitvault {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="the terminal demo (wallet, keypad, security lab)")
    demo.add_argument("--data-dir", type=Path, default=_env("DATA_DIR"),
                      help="where the demo keeps its device and server files "
                      "(default: your user data directory; env SPLITVAULT_DATA_DIR)")
    demo.add_argument("--server", default=_env("SERVER"),
                      help="use a running share server at this URL instead of one in "
                      "process (env SPLITVAULT_SERVER)")
    demo.add_argument("--pin-sha256", default=_env("PIN_SHA256"),
                      help="SHA-256 fingerprint of the server's TLS certificate to pin, as "
                      "printed by serve --dev-tls (env SPLITVAULT_PIN_SHA256)")
    demo.set_defaults(func=_demo)

    if _extras.missing_extras(*_SERVER_NEEDS):
        # Without the server extra its flags are unknown: take any arguments (no "-"
        # prefix, so --db is not refused first) and let running it say what to install.
        serve = sub.add_parser("serve", help="run the share server over HTTP (needs the "
                               "server extra)", prefix_chars="+", add_help=False)
        serve.add_argument("args", nargs="*")
    else:
        serve = sub.add_parser("serve", help="run the share server over HTTP")
        from .server import _serve as serve_module

        serve_module.add_arguments(serve)
    serve.set_defaults(func=_serve)

    keys = sub.add_parser("keys", help="manage the server's key-encryption key")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    gen = keys_sub.add_parser("generate", help="write a new key-encryption key file")
    gen.add_argument("--out", type=Path, default=_env("KEK_FILE"),
                     required=_env("KEK_FILE") is None,
                     help="key file to create, mode 0600; an existing file is never "
                     "overwritten (env SPLITVAULT_KEK_FILE)")
    gen.set_defaults(func=_keys_generate)
    rot = keys_sub.add_parser("rotate", help="re-wrap every stored secret under a new key "
                              "and retire the old one")
    rot.add_argument("--db", type=Path, default=_env("DB"), required=_env("DB") is None,
                     help="the server database (env SPLITVAULT_DB)")
    rot.add_argument("--kek-file", type=Path, default=_env("KEK_FILE"),
                     required=_env("KEK_FILE") is None,
                     help="the current key file; replaced by the new key when the rotation "
                     "has committed (env SPLITVAULT_KEK_FILE)")
    rot.set_defaults(func=_keys_rotate)

    audit = sub.add_parser("audit", help="verify the server's hash-chained audit log")
    audit.add_argument("--db", type=Path, default=_env("DB"), required=_env("DB") is None,
                       help="the server database to check (env SPLITVAULT_DB)")
    audit.add_argument("--kek-file", type=Path, default=_env("KEK_FILE"),
                       required=_env("KEK_FILE") is None,
                       help="its key-encryption key file, needed to check the log's MACs "
                       "(env SPLITVAULT_KEK_FILE)")
    audit.set_defaults(func=_audit)

    bench = sub.add_parser("bench", help="measure throughput and latency against the "
                           "crypto floor")
    bench.add_argument("--json", action="store_true",
                       help="print the results as JSON instead of a table")
    bench.add_argument("--quick", action="store_true",
                       help="short runs: a smoke test, not figures to quote")
    bench.add_argument("--no-http", action="store_true",
                       help="skip the HTTP benchmark (which needs the server and client "
                       "extras)")
    bench.add_argument("--no-keypad", action="store_true",
                       help="skip the keypad benchmark (which needs the demo extra)")
    bench.set_defaults(func=_bench)

    attack = sub.add_parser("attack", help="run the attack suite and print what each "
                            "attacker got")
    attack.add_argument("--server", default=_env("SERVER"),
                        help="run the network-reachable attacks against the deployment at "
                        "this URL (env SPLITVAULT_SERVER)")
    attack.add_argument("--pin-sha256", default=_env("PIN_SHA256"),
                        help="SHA-256 fingerprint of the server's TLS certificate to pin "
                        "(env SPLITVAULT_PIN_SHA256)")
    attack.add_argument("--json", action="store_true",
                        help="print the results as JSON instead of a table")
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
