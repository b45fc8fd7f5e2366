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
from typing import Any

from . import _extras
from ._errors import ConfigurationError, VaultError

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
    from .server._keysource import generate_key_source

    spec = args.kek if args.kek is not None else args.out
    if spec is None:
        raise ConfigurationError("keys generate needs --out FILE or --kek FILE|pkcs11:URI")
    key = generate_key_source(str(spec))
    try:
        print(f"created key-encryption key {key.kid_hex} in {key.describe()}")
    finally:
        key.wipe()
    return 0


def _operator_server(args: argparse.Namespace) -> Any:
    """The server database opened for an operator command: never created, never listed
    among the running servers."""
    from .server import ShareServer

    return ShareServer.open(args.db, kek_file=args.kek_file, create=False, announce=False)


def _keys_rotate(args: argparse.Namespace) -> int:
    from .server import _rotation

    key_file = Path(args.kek_file)
    with _operator_server(args) as server:
        store, ring = server.store, server.keyring
        old = ring.primary.kid_hex
        new = _rotation.add_key(store, ring, key_file, server.now())
        print(f"added key {new.kid_hex} to {key_file}; waiting for running servers "
              "to load it")
        _rotation.wait_for_workers(store, new.kid, timeout=args.wait)
        _rotation.promote(store, ring, new.kid, server.now())
        print(f"key {new.kid_hex} is primary; re-wrapping stored values")
        count = _rotation.rewrap(store, ring)
    print(f"re-wrapped {count} values from key {old} to key {new.kid_hex}. The old key "
          f"stays in {key_file} until 'splitvault keys retire --kid {old}'")
    return 0


def _keys_rewrap(args: argparse.Namespace) -> int:
    from .server import _rotation

    with _operator_server(args) as server:
        count = _rotation.rewrap(server.store, server.keyring)
        primary = server.keyring.primary.kid_hex
    print(f"re-wrapped {count} values under the primary key {primary}")
    return 0


def _keys_retire(args: argparse.Namespace) -> int:
    from .server import _rotation

    try:
        kid = bytes.fromhex(args.kid)
        if len(kid) != 8:
            raise ValueError
    except ValueError:
        raise ConfigurationError(
            f"--kid must be a key id of 16 hex digits, got {args.kid!r}") from None
    with _operator_server(args) as server:
        _rotation.retire(server.store, Path(args.kek_file), kid, server.now())
    print(f"key {args.kid} retired and removed from {args.kek_file}")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    with _operator_server(args) as server:
        counts = server.store.count_by_kid()
        held = set(server.keyring.kids)
        for record in server.store.key_records():
            print(f"{record.kid.hex()}  {record.state:<8} {counts.get(record.kid, 0):>8} values"
                  f"  {'in key file' if record.kid in held else 'NOT in key file'}")
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from .server import open_store

    store = open_store(args.db, create=True)
    try:
        before, after = store.upgrade()
    finally:
        store.close()
    if before == after:
        print(f"{args.db}: schema version {after}, already current")
    elif before == 0:
        print(f"{args.db}: created (schema version {after})")
    else:
        print(f"{args.db}: upgraded from schema version {before} to {after}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    with _operator_server(args) as server:
        if args.json:
            try:
                entries = server.audit_entries()
            except VaultError as exc:
                print(json.dumps({"error": exc.code, "message": str(exc)}), file=sys.stderr)
                return 1
            for entry in entries:
                print(json.dumps(entry, sort_keys=True))
            return 0
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

    keys = sub.add_parser("keys", help="manage the server's key-encryption keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    gen = keys_sub.add_parser("generate", help="create a new key-encryption key (a file, "
                              "or inside an HSM)")
    gen.add_argument("--out", type=Path, default=None,
                     help="key file to create, mode 0600; an existing file is never "
                     "overwritten")
    gen.add_argument("--kek", default=_env("KEK") or _env("KEK_FILE"),
                     help="the key to create: a file path, or an RFC 7512 pkcs11: URI "
                     "(module-path=, pin-source=file:...) for a non-extractable AES-256 key "
                     "in an HSM; refused if it exists (env SPLITVAULT_KEK)")
    gen.set_defaults(func=_keys_generate)

    def db_and_keys(p: argparse.ArgumentParser, key_help: str) -> None:
        p.add_argument("--db", default=_env("DB"), required=_env("DB") is None,
                       help="the server database: a SQLite file or a postgresql:// URL; "
                       "never created by this command (env SPLITVAULT_DB)")
        p.add_argument("--kek-file", type=Path, default=_env("KEK_FILE"),
                       required=_env("KEK_FILE") is None,
                       help=f"{key_help} (env SPLITVAULT_KEK_FILE)")

    rot = keys_sub.add_parser("rotate", help="add a new primary key while servers run, "
                              "and re-wrap every stored value under it")
    db_and_keys(rot, "the key file: the new key is appended; the old ones stay until "
                "'keys retire'")
    rot.add_argument("--wait", type=float, default=30.0,
                     help="seconds to wait for every running server to load the new key "
                     "before giving up (default 30)")
    rot.set_defaults(func=_keys_rotate)
    rew = keys_sub.add_parser("rewrap", help="finish an interrupted rotation: re-wrap what "
                              "is not under the primary key")
    db_and_keys(rew, "the key file")
    rew.set_defaults(func=_keys_rewrap)
    ret = keys_sub.add_parser("retire", help="remove an old key, only once nothing stored "
                              "is wrapped under it")
    db_and_keys(ret, "the key file the key is removed from")
    ret.add_argument("--kid", required=True, help="the key id to retire (16 hex digits)")
    ret.set_defaults(func=_keys_retire)
    lst = keys_sub.add_parser("list", help="the database's keys, their state, and how many "
                              "values each wraps")
    db_and_keys(lst, "the key file")
    lst.set_defaults(func=_keys_list)

    db = sub.add_parser("db", help="the server database's schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upg = db_sub.add_parser("upgrade", help="create the schema in an empty database, or "
                            "migrate an older one")
    upg.add_argument("--db", default=_env("DB"), required=_env("DB") is None,
                     help="a SQLite file (created if missing) or a postgresql:// URL of an "
                     "existing database (env SPLITVAULT_DB)")
    upg.set_defaults(func=_db_upgrade)

    audit = sub.add_parser("audit", help="verify the server's MAC-chained audit log")
    audit.add_argument("--db", default=_env("DB"), required=_env("DB") is None,
                       help="the server database to check: a SQLite file or a "
                       "postgresql:// URL (env SPLITVAULT_DB)")
    audit.add_argument("--kek-file", type=Path, default=_env("KEK_FILE"),
                       required=_env("KEK_FILE") is None,
                       help="its key-encryption key file, needed to check the log's MACs "
                       "(env SPLITVAULT_KEK_FILE)")
    audit.add_argument("--json", action="store_true",
                       help="print every entry as one JSON object per line (seq, event, "
                       "card_id, at, detail) after verifying the chain; exit 1 if broken")
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
