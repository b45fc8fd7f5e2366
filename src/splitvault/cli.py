"""The ``splitvault`` command: demo, serve, deployment, keys, audit, bench, attack.

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
        from ._version import __version__

        return __version__


def _keys_generate(args: argparse.Namespace) -> int:
    from .server._keysource import generate_key_source

    spec = args.kek if args.kek is not None else args.out
    if spec is None:
        raise ConfigurationError("keys generate needs --out FILE or --kek FILE|pkcs11:URI")
    if args.kek is not None and args.kek == _env("KEK") and len(str(spec).split()) > 1:
        raise ConfigurationError("SPLITVAULT_KEK names several keys; keys generate creates "
                                 "one: pass it with --kek")
    key = generate_key_source(str(spec))
    try:
        print(f"created key-encryption key {key.kid_hex} in {key.describe()}")
    finally:
        key.wipe()
    return 0


def _kek_specs(args: argparse.Namespace) -> list[str]:
    """The ``--kek`` specs, else those in ``SPLITVAULT_KEK`` (whitespace-separated)."""
    from .server._keysource import split_specs

    return list(args.kek) if args.kek else split_specs(_env("KEK"))


def _operator_server(args: argparse.Namespace, *, load_kek_file: bool = True) -> Any:
    """The server database opened for an operator command: never created, never listed
    among the running servers. Its keys: ``--kek-file`` (unless not ``load_kek_file``)
    and every ``--kek``."""
    from .server import ShareServer

    specs = _kek_specs(args)
    kek_file = args.kek_file if load_kek_file else None
    if not specs and kek_file is None:
        raise ConfigurationError(
            "no key-encryption key: pass --kek-file FILE or --kek FILE|pkcs11:URI "
            "(env SPLITVAULT_KEK_FILE, SPLITVAULT_KEK)")
    return ShareServer.open(args.db, kek_file=kek_file, kek=specs or None,
                            create=False, announce=False)


def _keys_rotate(args: argparse.Namespace) -> int:
    import shlex

    from .server import _rotation

    target = args.to if args.to is not None else args.to_existing
    if target is None and args.kek_file is None:
        raise ConfigurationError("keys rotate needs --kek-file FILE (the new key is appended "
                                 "to it) or --to pkcs11:URI (a new key in an HSM)")
    # From an HSM key to a file key, the key file may not exist yet: rotate creates it.
    new_file = target is None and not Path(args.kek_file).exists() and bool(_kek_specs(args))
    with _operator_server(args, load_kek_file=not new_file) as server:
        store, ring = server.store, server.keyring
        old = ring.primary
        old_id, old_where = old.kid_hex, old.describe()
        remedy = None
        if target is None:
            key_file = Path(args.kek_file)
            new: Any = _rotation.add_key(store, ring, key_file, server.now())
            where = str(key_file)
        else:
            new = _rotation.add_hsm_key(store, ring, target, server.now(),
                                        existing=args.to is None)
            where = new.describe()
            remedy = (f"start every server with --kek {shlex.quote(where)} (with its PIN "
                      "source) beside the key it has now, then run 'splitvault keys rotate "
                      f"--to-existing {shlex.quote(where)}' (the key is in the token and "
                      "pending; nothing else was changed)")
        print(f"added key {new.kid_hex} to {where}; waiting for running servers "
              "to load it")
        _rotation.wait_for_workers(store, new.kid, timeout=args.wait, remedy=remedy)
        _rotation.promote(store, ring, new.kid, server.now())
        print(f"key {new.kid_hex} is primary; re-wrapping stored values")
        count = _rotation.rewrap(store, ring)
    print(f"re-wrapped {count} values from key {old_id} to key {new.kid_hex}. Servers need "
          f"the old key too ({old_where}) until 'splitvault keys retire --kid {old_id}'")
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
        key = server.keyring.get(kid)
        if _is_hsm_key(key):
            return _retire_hsm(server, key, args.destroy)
        if args.destroy:
            raise ConfigurationError("--destroy is for a key in an HSM; a file key is "
                                     "removed from its key file (nothing was changed)")
        # A file key leaves the file it was loaded from (else --kek-file, as before).
        key_file = Path(key.describe()) if key is not None else (
            Path(args.kek_file) if args.kek_file is not None else None)
        deleted = _rotation.retire(server.store, key_file, kid, server.now())
    if key_file is None:
        print(f"key {args.kid} retired in the database")
    elif deleted:
        print(f"key {args.kid} retired; it was the last key in {key_file}, which was "
              "deleted: start servers without it")
    else:
        print(f"key {args.kid} retired and removed from {key_file}")
    return 0


def _is_hsm_key(key: object) -> bool:
    from .server._pkcs11 import Pkcs11Kek

    return isinstance(key, Pkcs11Kek)


def _retire_hsm(server: Any, key: Any, destroy: bool) -> int:
    import shlex

    from .server import _rotation

    where, command = key.describe(), key.destroy_command()
    _rotation.retire_hsm_key(server.store, key, server.now(), destroy=destroy)
    if destroy:
        print(f"key {key.kid_hex} retired and destroyed in its token; remove --kek "
              f"{shlex.quote(where)} from every server")
    else:
        print(f"key {key.kid_hex} retired in the database; it is still in its token. "
              f"Remove --kek {shlex.quote(where)} from every server, then delete it with "
              f"your HSM's tool, e.g. '{command}', or run this again with --destroy")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    with _operator_server(args) as server:
        counts = server.store.count_by_kid()
        for record in server.store.key_records():
            key = server.keyring.get(record.kid)
            where = ("NOT given" if key is None
                     else f"in token: {key.describe()}" if _is_hsm_key(key) else "in key file")
            print(f"{record.kid.hex()}  {record.state:<8} {counts.get(record.kid, 0):>8} values"
                  f"  {where}")
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


def _reconcile(args: argparse.Namespace) -> int:
    """Settle the payments in doubt with the acquirer the servers use (``--acquirer``);
    without one, only count them: an acquirer made up here (a fresh simulated one)
    has empty books and would call every payment not found."""
    from .server._simulated import simulated_acquirer

    asked = args.acquirer or args.simulated_books
    with _operator_server(args) as server:
        if args.acquirer:
            server.acquirer = _load_acquirer(args.acquirer)
        elif (simulated := simulated_acquirer(args.simulated_books)) is not None:
            # The books `serve --simulated-books` keeps: the same acquirer, on disk.
            server.acquirer = simulated
        report = server.reconcile(dry_run=not asked)
    if args.json:
        print(json.dumps(report.as_dict(), sort_keys=True))
    else:
        print(report)
        if not asked and report.examined:
            print("nothing settled: pass --acquirer MODULE:NAME (the acquirer the servers "
                  "use) to settle them")
    return 0


def _risk_check(args: argparse.Namespace) -> int:
    """Replay the recorded history against a rules file (a dry run: nothing changes)
    and print what it would have declined."""
    from .server import RiskRules

    rules = RiskRules.from_toml(args.risk_rules)
    with _operator_server(args) as server:
        found = server.risk_dry_run(rules)
    if args.json:
        for d in found:
            print(json.dumps({"card": d.card, "at": d.at.isoformat(), "amount": d.amount,
                              "currency": d.currency, "reason": d.reason}, sort_keys=True))
        return 0
    for d in found:
        print(f"{d.at.isoformat()}  card {d.card}  {d.amount} {d.currency}  {d.reason}")
    cards = len({d.card for d in found})
    print(f"{args.risk_rules} would have declined {len(found)} payment(s) of {cards} "
          "card(s) in the recorded history")
    return 0


def _load_acquirer(spec: str) -> Any:
    """``module:name``: the object, or what calling it returns (a class or factory)."""
    import importlib

    module, _, name = spec.partition(":")
    if not module or not name:
        raise ConfigurationError("--acquirer must be MODULE:NAME, e.g. mygateway:Acquirer")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise ConfigurationError(f"cannot load the acquirer {spec}") from None
    if isinstance(found, type) or (callable(found) and not hasattr(found, "authorize")):
        return found()
    return found


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

    result = run_all(quick=args.quick, http=not args.no_http, keypad=not args.no_keypad,
                     postgres=not args.no_postgres, scale=not args.no_scale,
                     realms=not args.no_realms,
                     scale_10m=args.scale_10m)
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


def _deployment(args: argparse.Namespace) -> int:
    if args.deployment_command == "init":
        _extras.require_all("splitvault deployment init", *_CLIENT_NEEDS)
    return int(args.deployment_func(args))


def _key_options(p: argparse.ArgumentParser, key_help: str) -> None:
    """--kek-file and --kek: an operator command needs at least one (checked when run)."""
    p.add_argument("--kek-file", type=Path, default=_env("KEK_FILE"),
                   help=f"{key_help} (env SPLITVAULT_KEK_FILE)")
    p.add_argument("--kek", action="append", default=None, metavar="FILE|PKCS11_URI",
                   help="a key file or an RFC 7512 pkcs11: URI of a key in an HSM; repeat "
                   "for several (env SPLITVAULT_KEK: specs separated by whitespace)")


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

    from . import _deployment_cli

    deployment = sub.add_parser("deployment", help="the deployment file of a t-of-n "
                                "deployment: make it from the running servers, show it")
    _deployment_cli.add_arguments(deployment, _env("DEPLOYMENT") or "deployment.json")
    deployment.set_defaults(func=_deployment)

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
        _key_options(p, key_help)

    rot = keys_sub.add_parser("rotate", help="add a new primary key while servers run, "
                              "and re-wrap every stored value under it")
    db_and_keys(rot, "the key file: the new key is appended; the old ones stay until "
                "'keys retire'")
    to = rot.add_mutually_exclusive_group()
    to.add_argument("--to", default=None, metavar="PKCS11_URI",
                    help="rotate to a new key created in an HSM (a pkcs11: URI; a label "
                    "already in the token is refused). Start every server with this URI "
                    "beside its current key first, or the rotation stops before promoting")
    to.add_argument("--to-existing", default=None, metavar="PKCS11_URI",
                    help="rotate to a key already in an HSM (made by 'keys generate --kek', "
                    "or by an interrupted --to rotation, which this resumes)")
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
    ret.add_argument("--destroy", action="store_true",
                     help="for a key in an HSM: also delete it from the token (C_DestroyObject),"
                     " after the database verified that nothing is wrapped under it; "
                     "without it the key stays in the token")
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
    _key_options(audit, "its key-encryption key file, needed to check the log's MACs")
    audit.add_argument("--json", action="store_true",
                       help="print every entry as one JSON object per line (seq, event, "
                       "card_id, at, detail) after verifying the chain; exit 1 if broken")
    audit.set_defaults(func=_audit)

    rec = sub.add_parser("reconcile", help="settle payments in doubt with the acquirer "
                         "(status, else reverse); prints counts by outcome")
    rec.add_argument("--db", default=_env("DB"), required=_env("DB") is None,
                     help="the server database: a SQLite file or a postgresql:// URL "
                     "(env SPLITVAULT_DB)")
    _key_options(rec, "its key-encryption key file, to record settled results")
    rec.add_argument("--acquirer", default=_env("ACQUIRER"),
                     help="MODULE:NAME of the acquirer the servers use (an object, or a "
                     "class or factory to call); without it payments in doubt are only "
                     "counted (env SPLITVAULT_ACQUIRER)")
    rec.add_argument("--simulated-books", default=_env("SIMULATED_BOOKS"), metavar="FILE",
                     help="or the simulated acquirer over the books file that 'serve "
                     "--simulated-books FILE' keeps (env SPLITVAULT_SIMULATED_BOOKS)")
    rec.add_argument("--json", action="store_true", help="print the report as JSON")
    rec.set_defaults(func=_reconcile)

    risk = sub.add_parser("risk", help="fraud rules: check a rules file against the "
                          "recorded history")
    risk_sub = risk.add_subparsers(dest="risk_command", required=True, metavar="ACTION")
    chk = risk_sub.add_parser("check", help="a dry run: which recorded payments the rules "
                              "would have declined (nothing changes)")
    chk.add_argument("--db", default=_env("DB"), required=_env("DB") is None,
                     help="the server database: a SQLite file or a postgresql:// URL "
                     "(env SPLITVAULT_DB)")
    _key_options(chk, "its key-encryption key file, to read the rules' history")
    chk.add_argument("--risk-rules", default=_env("RISK_RULES"),
                     required=_env("RISK_RULES") is None, metavar="FILE",
                     help="the rules file to try (TOML; env SPLITVAULT_RISK_RULES)")
    chk.add_argument("--json", action="store_true", help="one JSON object per decline")
    chk.set_defaults(func=_risk_check)

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
    bench.add_argument("--no-postgres", action="store_true",
                       help="skip the PostgreSQL benchmark (skipped anyway, with the "
                       "reason, when no PostgreSQL answers)")
    bench.add_argument("--no-realms", action="store_true",
                       help="skip the realm benchmark (3 realms at threshold 2 against "
                       "the single server)")
    bench.add_argument("--no-scale", action="store_true",
                       help="skip the scale benchmark (10 thousand vs 1 million cards)")
    bench.add_argument("--scale-10m", action="store_true",
                       help="the scale benchmark also at 10 million cards (a 3-4 GB "
                       "file, minutes to fill)")
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
    attack.add_argument("--yes", action="store_true",
                        help="with --server: run without asking. The suite enrolls test "
                        "cards there and charges them through the deployment's acquirer, "
                        "then deletes them; off a terminal it refuses to start without "
                        "--yes")
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
