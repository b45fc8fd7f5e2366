"""``splitvault attack``: run every attack scenario and print what each attacker got.

Each row is one attack: what the attacker had, what they got, and PASS when the
defense held, FAIL when it did not (or when the suite could not prove that it did),
SKIP when it could not run here. The exit status is 1 if any attack FAILs, else 0.

In-process by default: a fresh share server and devices in a temporary folder, with
the TEST_ONLY KDF (the attacks target the protocol, not Argon2's cost). With
``--server URL`` the network-reachable scenarios (1, 4, 5, 10, 20, ...) run against that
deployment through the real HTTP client, with test cards the suite enrolls and deletes
itself (it says so first, and asks; off a terminal it needs ``--yes``); the others
need the server's files and are skipped. ``--slow`` also runs
attacks that must wait out a real timeout (the 60 s challenge expiry).

``python -m splitvault._attack.runner`` takes the same flags, plus ``--only 1,4``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .._errors import ConfigurationError
from . import (
    at_rest,
    audit_log,
    card_ids,
    device_copy,
    device_theft,
    double_charge,
    dropped_packets,
    enrollment_flood,
    file_modes,
    fuzz,
    hostile_server,
    incidents,
    interrupted_enrollment,
    leakage,
    money,
    protocol,
    realm_breach,
    server_backup,
    server_breach,
    shutdown,
    slow_clients,
    stranger,
)
from ._harness import IN_PROCESS_ONLY, AttackResult, Cleanup, Deployment, Options, skipped

__all__ = ["SCENARIOS", "Scenario", "cli", "main", "render_table", "run_suite"]


@dataclass(frozen=True)
class Scenario:
    number: int
    key: str
    title: str
    run: Callable[[Deployment, Options], list[AttackResult]]
    network: bool
    """Runs against a remote deployment (``--server``)."""

    @property
    def label(self) -> str:
        return f"{self.number}. {self.title}"


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(1, "stolen-device", "Stolen device", device_theft.run, True),
    Scenario(2, "server-breach", "Server breach", server_breach.run, False),
    Scenario(3, "each-side-alone", "Each side alone", at_rest.run, False),
    Scenario(4, "network", "Replay and tampering", protocol.run, True),
    Scenario(5, "double-charge", "Double charge", double_charge.run, True),
    Scenario(6, "leakage", "Leakage", leakage.run, False),
    Scenario(7, "audit-log", "Audit-log tampering", audit_log.run, False),
    Scenario(8, "malformed-input", "Malformed input", fuzz.run, True),
    Scenario(9, "incidents", "Real incidents", incidents.run, False),
    Scenario(10, "stranger", "Stranger", stranger.run, True),
    Scenario(11, "file-modes", "Another local user", file_modes.run, False),
    Scenario(12, "hostile-server", "Hostile server", hostile_server.run, False),
    Scenario(13, "slow-clients", "Slow clients", slow_clients.run, True),
    Scenario(14, "shutdown", "Shutdown under load", shutdown.run, False),
    Scenario(15, "dropped-packets", "Dropped packets", dropped_packets.run, True),
    Scenario(16, "money-taken", "Money taken for a failed payment", money.run, False),
    Scenario(17, "card-ids", "Card ids probed", card_ids.run, True),
    Scenario(18, "interrupted-enrollment", "Interrupted enrollment",
             interrupted_enrollment.run, False),
    Scenario(19, "enrollment-flood", "Strangers flood enrollment", enrollment_flood.run,
             False),
    Scenario(20, "device-copy", "A copy of the device from before a payment",
             device_copy.run, True),
    Scenario(21, "old-server-backup", "An old server backup with the current device",
             server_backup.run, False),
    Scenario(22, "realm-breach", "t-1 realms and the device's files", realm_breach.run,
             False),
)


def select(only: str | None) -> list[Scenario]:
    """The scenarios named in ``only`` (numbers or keys, comma-separated), or all."""
    if not only:
        return list(SCENARIOS)
    wanted = {w.strip() for w in only.split(",") if w.strip()}
    chosen = [s for s in SCENARIOS if str(s.number) in wanted or s.key in wanted]
    unknown = wanted - {str(s.number) for s in chosen} - {s.key for s in chosen}
    if unknown:
        raise ConfigurationError(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return chosen


def run_suite(deployment: Deployment, options: Options | None = None,
              scenarios: Sequence[Scenario] = SCENARIOS) -> list[AttackResult]:
    """Every attack of ``scenarios`` against ``deployment``, each labelled with its
    scenario. A scenario that crashes is one FAIL row, never a silent gap."""
    options = options or Options()
    results: list[AttackResult] = []
    for scenario in scenarios:
        if deployment.remote and not scenario.network:
            found = [skipped(scenario.title.lower(), "-", IN_PROCESS_ONLY)]
        else:
            try:
                found = scenario.run(deployment, options)
            except Exception as exc:  # the report must show it, as a FAIL
                found = [AttackResult(scenario.title.lower(), "-",
                                      f"scenario crashed: {type(exc).__name__}", False,
                                      str(exc)[:200])]
        results += [replace(r, scenario=scenario.label) for r in found]
    return results


def failed(results: Sequence[AttackResult]) -> bool:
    return any(not r.passed and not r.skipped for r in results)


def summary(results: Sequence[AttackResult], target: str, seconds: float) -> str:
    counts = {v: sum(1 for r in results if r.verdict == v) for v in ("PASS", "FAIL", "SKIP")}
    verdict = "an attack succeeded" if counts["FAIL"] else "every defense held"
    return (f"{len(results)} attacks against {target}: {counts['PASS']} PASS, "
            f"{counts['FAIL']} FAIL, {counts['SKIP']} SKIP in {seconds:.1f} s: {verdict}")


_COLUMNS = (("attack", 38), ("attacker had", 30), ("attacker got", 50), ("result", 6))


def render_table(results: Sequence[AttackResult]) -> str:
    """Plain text, columns wrapped to fixed widths (fits 130 columns), one block per
    scenario."""
    lines: list[str] = []
    header = "  ".join(name.ljust(width) for name, width in _COLUMNS).rstrip()
    rule = "  ".join("-" * width for _, width in _COLUMNS)
    scenario = None
    for result in results:
        if result.scenario != scenario:
            scenario = result.scenario
            lines += ["", scenario, header, rule]
        cells = [textwrap.wrap(text, width) or [""] for text, (_, width) in zip(
            (result.name, result.attacker_had, result.attacker_got, result.verdict),
            _COLUMNS, strict=True)]
        for row in range(max(len(c) for c in cells)):
            lines.append("  ".join((c[row] if row < len(c) else "").ljust(width)
                                   for c, (_, width) in zip(cells, _COLUMNS, strict=True))
                         .rstrip())
    details = [f"  {r.verdict} {r.scenario} / {r.name}: {r.detail}" for r in results
               if r.detail and r.verdict == "FAIL"]
    if details:
        lines += ["", "Why the failures failed:", *details]
    return "\n".join(lines[1:])


def _print_rich(results: Sequence[AttackResult]) -> bool:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return False
    console = Console()
    style = dict(zip(("PASS", "FAIL", "SKIP"), ("bold green", "bold red", "yellow"),
                     strict=True))
    table = Table(show_lines=False)
    for name, _ in _COLUMNS:
        table.add_column(name, overflow="fold")
    scenario = None
    for r in results:
        if r.scenario != scenario:
            scenario = r.scenario
            table.add_section()
            table.add_row(f"[bold]{scenario}[/bold]", "", "", "")
        table.add_row(r.name, r.attacker_had, r.attacker_got,
                      f"[{style[r.verdict]}]{r.verdict}[/]")
    console.print(table)
    for r in results:
        if r.detail and r.verdict == "FAIL":
            console.print(f"[red]{r.verdict}[/red] {r.name}: {r.detail}")
    return True


def main(args: argparse.Namespace) -> int:
    """The ``splitvault attack`` command: 0 if every defense held, 1 if any attack
    succeeded."""
    url: str | None = getattr(args, "server", None)
    options = Options(slow=bool(getattr(args, "slow", False)))
    scenarios = select(getattr(args, "only", None))
    deployment = Deployment(url, pin_sha256=getattr(args, "pin_sha256", None))
    if url is not None:
        if not consent(url, yes=bool(getattr(args, "yes", False))):
            return 2
        _reachable(url, getattr(args, "pin_sha256", None))
    started = time.monotonic()
    results = run_suite(deployment, options, scenarios)
    seconds = time.monotonic() - started
    target = url or "an in-process server"
    if getattr(args, "json", False):
        report: dict[str, Any] = {"target": target, "seconds": round(seconds, 2),
                                  "passed": not failed(results),
                                  "results": [r.as_dict() for r in results]}
        if url is not None:
            report["cleanup"] = dataclasses.asdict(deployment.cleanup)
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        if not (sys.stdout.isatty() and _print_rich(results)):
            print(render_table(results))
        print()
        print(summary(results, target, seconds))
        if url is not None:
            print(cleanup_line(deployment.cleanup))
    return 1 if failed(results) else 0


NOTICE = """\
splitvault attack --server {url}:
  enrolls test cards on this deployment (Visa and Mastercard test numbers, which no
  issuer honours) and charges them through the deployment's acquirer: with a real
  gateway these are real authorization requests, 12,000 KRW each, merchant
  "Gift Shop". Every card it enrolled is deleted when it is done."""


def consent(url: str, *, yes: bool) -> bool:
    """Say what a run against ``url`` does; go on with ``yes``, or if the user agrees
    at the terminal. Off a terminal without ``yes``: refuse, saying to pass it."""
    print(NOTICE.format(url=url), file=sys.stderr)
    if yes:
        return True
    if not sys.stdin.isatty():
        print("splitvault attack: not on a terminal: pass --yes to run against a "
              "deployment", file=sys.stderr)
        return False
    try:
        answer = input("Run the attacks against it? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def cleanup_line(cleanup: Cleanup) -> str:
    """What the run left behind on the deployment: nothing, or the cards to delete."""
    line = (f"cleanup: {cleanup.enrolled} test cards enrolled, "
            f"{cleanup.deleted} deleted")
    if cleanup.left:
        line += (f"; {len(cleanup.left)} could not be deleted (card ids: "
                 f"{', '.join(cleanup.left)})")
    return line


def _reachable(url: str, pin_sha256: str | None) -> None:
    """Fail fast, with the client's own error, if the deployment cannot be reached."""
    from ..hazmat import HttpShareService

    service = HttpShareService(url, pin_sha256=pin_sha256)
    try:
        service.info()
    finally:
        service.close_transport()


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m splitvault._attack.runner",
                                     description="Run the splitvault attack suite.")
    parser.add_argument("--server", default=None)
    parser.add_argument("--pin-sha256", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--slow", action="store_true",
                        help="also run attacks that wait out real timeouts")
    parser.add_argument("--only", default=None,
                        help="comma-separated scenario numbers or keys")
    parser.add_argument("--yes", action="store_true",
                        help="with --server: run without asking (test cards are enrolled "
                        "and charged there)")
    args = parser.parse_args(argv)
    try:
        return main(args)
    except ConfigurationError as exc:
        print(f"splitvault attack: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(cli())
