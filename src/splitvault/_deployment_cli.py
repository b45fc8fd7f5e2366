"""``splitvault deployment init`` and ``show``: the deployment file from running servers.

``init`` asks each server named on the command line for its key (a realm's
``/v1/realm/info``, a gateway's ``/v1/gateway/info``) and writes what they answered:
the file carries only what the servers themselves said, never a key typed by hand.

A server is given as ``[NAME=]URL[#PIN]``: ``NAME`` for people and messages (default
``realm-1``.., ``gateway-1``.. in the order given), ``PIN`` the SHA-256 of a
self-signed server's certificate as ``serve --dev-tls`` prints it. ``#`` cannot be part
of a server URL (the clients refuse a fragment), so the split is never ambiguous.

Everything that can be checked without the network (the URLs, names, pins, duplicates,
the threshold, an existing ``--out``) is checked before the first server is asked, and
the file is written only once every server answered, so a failed ``init`` leaves no
file behind.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._deployment import Deployment, Endpoint
from ._errors import ConfigurationError, ServerUnavailable

__all__ = ["SPEC_HELP", "add_arguments", "init", "show"]

SPEC_HELP = ("[NAME=]URL[#PIN]: NAME defaults to realm-1.. / gateway-1.. in order; PIN is "
             "the SHA-256 of a self-signed server's certificate (as 'serve --dev-tls' "
             "prints it), for an https:// URL")
_SPEC = re.compile(r"(?:(?P<name>[A-Za-z0-9._-]{1,40})=)?(?P<url>[^#=]+)(?:#(?P<pin>[^#]*))?")


@dataclass(frozen=True)
class _Server:
    role: str  # "realm" or "gateway": also the flag it came from
    spec: str
    name: str
    url: str
    pin: str | None


def init(args: argparse.Namespace) -> int:
    if not args.realm or not args.gateway:
        raise ConfigurationError("deployment init needs the realms (--realm URL, once for "
                                 "each) and at least one --gateway URL")
    realms = _servers("realm", args.realm)
    gateways = _servers("gateway", args.gateway)
    # The deployment's own rules (counts, threshold, duplicates, URL form), checked on
    # placeholder keys before anything is asked, so a typo costs no network round.
    _deployment(realms, gateways, args.threshold, keys=None)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise ConfigurationError(f"{out} exists; pass --force to replace it")
    keys: dict[str, bytes] = {}
    limits: dict[str, int] = {}
    clients: list[Any] = []
    try:
        for server in (*realms, *gateways):
            clients.append(_client(server, args.timeout))
        for server, client in zip((*realms, *gateways), clients, strict=True):
            keys[server.url], limits[server.url] = _ask(server, client, args.timeout)
    finally:
        for client in clients:
            client.close_transport()
    _save(_deployment(realms, gateways, args.threshold, keys=keys), out, args.force)
    deployment = Deployment.load(out)
    print(f"wrote {out}: {deployment.threshold} of {len(deployment.realms)} realms, "
          f"{len(deployment.gateways)} gateway(s)")
    for endpoint in deployment.realms:
        print(_line("realm", endpoint, f"guess limit {limits[endpoint.url]}"))
    for endpoint in deployment.gateways:
        print(_line("gateway", endpoint))
    return 0


def show(args: argparse.Namespace) -> int:
    deployment = Deployment.load(args.file)  # a file that does not load: exit 2, the reason
    print(f"{args.file}: {deployment.threshold} of {len(deployment.realms)} realms, "
          f"{len(deployment.gateways)} gateway(s)")
    for endpoint in deployment.realms:
        print(_line("realm", endpoint))
    for endpoint in deployment.gateways:
        print(_line("gateway", endpoint))
    return 0


def _save(deployment: Deployment, out: Path, force: bool) -> None:
    """Write ``out``; with ``force`` by a rename over it, so that a realm or gateway
    already following the file (``serve --deployment``) reads the old file or the new
    one, never half of one."""
    if not force:
        deployment.save(out)
        return
    part = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        deployment.save(part, overwrite=True)
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)


def add_arguments(parser: argparse.ArgumentParser, default_file: str) -> None:
    """``deployment init`` and ``deployment show`` under ``parser``."""
    sub = parser.add_subparsers(dest="deployment_command", required=True, metavar="ACTION")
    ini = sub.add_parser(
        "init", help="write a deployment file from the running realms and gateways",
        description="Ask each running server for its key and write the deployment file "
        "that devices, realms and gateways are given. Nothing is written unless every "
        "server answered in its role.")
    ini.add_argument("--realm", action="append", metavar="[NAME=]URL[#PIN]",
                     help=f"a realm ('serve --role realm'); repeat for each. {SPEC_HELP}")
    ini.add_argument("--gateway", action="append", metavar="[NAME=]URL[#PIN]",
                     help="a gateway ('serve --role gateway'); repeat for each. Same form")
    ini.add_argument("--threshold", type=int, default=2,
                     help="how many realms serve a payment together (default 2; 2 to the "
                     "number of realms, or 1 with a single realm)")
    ini.add_argument("--out", default=default_file,
                     help=f"the file to write (default {default_file}; env "
                     "SPLITVAULT_DEPLOYMENT); an existing one is kept unless --force")
    ini.add_argument("--force", action="store_true", help="replace an existing --out file")
    ini.add_argument("--timeout", type=float, default=10.0,
                     help="seconds to wait for each server (default 10)")
    ini.set_defaults(deployment_func=init)
    sho = sub.add_parser("show", help="check that a deployment file loads and print its "
                         "realms, gateways and threshold")
    sho.add_argument("file", nargs="?", default=default_file,
                     help=f"the deployment file (default {default_file}; env "
                     "SPLITVAULT_DEPLOYMENT)")
    sho.set_defaults(deployment_func=show)


def _servers(role: str, specs: Sequence[str]) -> list[_Server]:
    out: list[_Server] = []
    for i, spec in enumerate(specs, start=1):
        found = _SPEC.fullmatch(spec.strip())
        if found is None:
            raise ConfigurationError(f"--{role} {spec!r}: expected [NAME=]URL[#PIN]")
        pin = found["pin"]
        if pin is not None:
            pin = pin.replace(":", "").lower()  # as printed, with or without colons
        url = found["url"].rstrip("/")
        out.append(_Server(role, spec, found["name"] or f"{role}-{i}", url, pin))
    return out


def _deployment(realms: Sequence[_Server], gateways: Sequence[_Server], threshold: int,
                *, keys: dict[str, bytes] | None) -> Deployment:
    """The deployment, checked as ``Deployment.load`` will check the file (the JSON
    round trip), so what is saved always loads. ``keys`` None: placeholders."""
    def endpoint(server: _Server, i: int) -> Endpoint:
        key = keys[server.url] if keys is not None else i.to_bytes(32, "big")
        return Endpoint(server.name, server.url, key, server.pin)

    servers = [*realms, *gateways]
    try:
        built = Deployment(tuple(endpoint(s, i) for i, s in enumerate(realms)),
                           tuple(endpoint(s, len(realms) + i)
                                 for i, s in enumerate(gateways)), threshold)
        return Deployment.from_json(built.to_json(), "the deployment")
    except ConfigurationError as exc:
        raise ConfigurationError(_name_flag(str(exc), servers)) from None


def _name_flag(message: str, servers: Sequence[_Server]) -> str:
    """``realms[1]: url ...`` said as the flag the user typed, ``--realm 'spec': url ...``."""
    message = message.removeprefix("the deployment: ")
    found = re.fullmatch(r"(realms|gateways)\[(\d+)\]: (.*)", message)
    if found is not None:
        role = found[1][:-1]
        server = [s for s in servers if s.role == role][int(found[2])]
        return f"--{role} {server.spec!r}: {found[3]}"
    if message.startswith("threshold"):
        return f"--{message}"
    if "share the key" in message:
        return f"{message} (one server given twice, under two URLs?)"
    return message


def _client(server: _Server, timeout: float, kind: Any = None, retries: int = 2) -> Any:
    """The HTTP client of the server's role; its URL and pin checked as devices check
    them (plain http:// only to a loopback address)."""
    from .hazmat import HttpGateway, HttpRealm

    if kind is None:
        kind = HttpRealm if server.role == "realm" else HttpGateway
    try:
        return kind(server.url, pin_sha256=server.pin, timeout=timeout,
                    connect_retries=retries)
    except ConfigurationError as exc:
        raise ConfigurationError(f"--{server.role} {server.spec!r}: {exc}") from None


def _ask(server: _Server, client: Any, timeout: float) -> tuple[bytes, int]:
    """The server's key (and a realm's guess limit, 0 for a gateway), asked in the role
    it was given."""
    try:
        if server.role == "realm":
            info = client.realm_info()
            return info.realm_key, info.guess_limit
        return client.gateway_info().gateway_key, 0
    except ServerUnavailable as exc:
        if str(exc).endswith("(not_found)"):  # it answers, but not this role's route
            raise ServerUnavailable(
                f"--{server.role} {server.url} is not a {server.role}: it has no "
                f"/v1/{server.role}/info (is it {_what_it_is(server, timeout)}?)") from None
        # The client's advice names the device's option; here a pin is '#PIN'.
        hint = (f" (here: --{server.role} {server.url}#PIN)"
                if "pin_sha256" in str(exc) else "")
        raise ServerUnavailable(f"--{server.role} {server.url}: {exc}{hint}") from None
    except ConfigurationError as exc:
        raise ConfigurationError(f"--{server.role} {server.url}: {exc}") from None


def _what_it_is(server: _Server, timeout: float) -> str:
    """For the message only: the role the server does answer in, if any."""
    from .hazmat import HttpGateway, HttpRealm, HttpShareService

    probes: tuple[tuple[str, str, Any, str], ...] = (
        ("gateway", "a gateway ('serve --role gateway')", HttpGateway, "gateway_info"),
        ("realm", "a realm ('serve --role realm')", HttpRealm, "realm_info"),
        ("all", "the single server ('serve', role all)", HttpShareService, "info"),
    )
    for role, what, kind, method in probes:
        if role == server.role:
            continue
        client = _client(server, timeout, kind, retries=0)
        try:
            getattr(client, method)()
            return what
        except (ServerUnavailable, ConfigurationError):
            continue
        finally:
            client.close_transport()
    return "another service"


def _line(role: str, endpoint: Endpoint, extra: str = "") -> str:
    pin = f"  tls pin {endpoint.tls_pin}" if endpoint.tls_pin else ""
    tail = f"  ({extra})" if extra else ""
    return f"  {role:<7} {endpoint.name:<12} {endpoint.url:<28} key {endpoint.key.hex()}{pin}{tail}"
