"""Two gateways over one PostgreSQL database act as one gateway: the same payment sent
to both at once is charged once (issue 13's variant of issue 8's exactly-once test).
Three realms (SQLite) and two ``serve --role gateway`` processes on 127.0.0.1, sharing
one key file, one database and the simulated acquirer's books."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import splitvault as sv
from splitvault._deployment import Deployment, Endpoint
from splitvault._realm_protocol import GatewayAuthorize, GatewayReply
from splitvault.device._http import HttpGateway, HttpRealm
from splitvault.device._realms import RealmClient

sys.path.append(str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parents[1] / "http"))
from http_support import ServerProcess  # tests/http is not a package: on the path above

from pg_support import require_postgres, temporary_database

pytestmark = pytest.mark.xdist_group("realm-processes")

PIN = "402917"


class BothAtOnce:
    """A gateway client that sends every payment to both gateways at the same time
    and checks they answer alike (the device itself sends to one, then the other)."""

    def __init__(self, first: HttpGateway, second: HttpGateway) -> None:
        self.clients = (first, second)
        self.answers: list[GatewayReply] = []
        self.refused = 0

    def gateway_info(self) -> object:
        return self.clients[0].gateway_info()

    def gateway_authorize(self, request: GatewayAuthorize) -> GatewayReply:
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(c.gateway_authorize, request) for c in self.clients]
        answers, refused = [], 0
        for future in futures:
            try:
                answers.append(future.result())
            except sv.InvalidChallenge:
                # The other took the request's nonce before writing its ledger row: this
                # one refuses at once (it never waits of its own, see _gateway._answered).
                refused += 1
        assert answers and refused + len(answers) == 2
        self.answers += answers
        self.refused += refused
        return answers[0]


@pytest.fixture()
def pg_url() -> Iterator[str]:
    require_postgres()
    with temporary_database() as url:
        yield url


def test_one_charge_for_a_payment_sent_to_two_gateways(tmp_path: Path, pg_url: str) -> None:
    path = tmp_path / "deployment.json"
    books = tmp_path / "books.jsonl"
    realms = [ServerProcess(tmp_path / f"realm-{i}", "--role", "realm", "--deployment",
                            str(path)) for i in range(1, 4)]
    gateway_args = ["--role", "gateway", "--deployment", str(path), "--simulated-books",
                    str(books), "--db", pg_url]
    gateways = [ServerProcess(tmp_path / f"gateway-{i}", *gateway_args) for i in (1, 2)]
    gateways[1].kek.write_bytes(gateways[0].kek.read_bytes())  # one store, one key
    started: list[ServerProcess] = []
    clients: list[HttpGateway] = []
    try:
        for proc in (*realms, gateways[0]):
            started.append(proc.start())
        started.append(gateways[1].start())  # after the first made the schema and keys
        endpoints = []
        for i, proc in enumerate(realms, 1):
            realm = HttpRealm(proc.url)
            endpoints.append(Endpoint(f"realm-{i}", proc.url, realm.realm_info().realm_key))
            realm.close_transport()
        clients = [HttpGateway(g.url) for g in gateways]
        keys = [c.gateway_info().gateway_key for c in clients]
        assert keys[0] == keys[1]  # one store: one gateway, at two addresses
        deployment = Deployment(tuple(endpoints),
                                tuple(Endpoint(f"gateway-{i}", g.url, keys[0])
                                      for i, g in enumerate(gateways, 1)), 2)
        deployment.save(path)
        both = BothAtOnce(*clients)
        client = RealmClient(deployment, gateways={keys[0]: both}, timeout=10.0)
        with sv.Device.open(tmp_path / "device.db", server=client,
                            kdf=sv.KdfProfile.TEST_ONLY) as device, sv.Pin.from_digits(PIN) as pin:
            card_id = device.enroll(sv.Card("4111111111111111", "12/30", "KIM MINJI"), pin)
            for i in range(5):
                result = device.authorize(card_id, pin, amount=1000 + i, currency="KRW",
                                          merchant="Gangnam Coffee",
                                          idempotency_key=f"twice-{i}")
                assert result.approved
        assert len(both.answers) + both.refused == 10
        codes = {a.authorization.approval_code for a in both.answers}
        assert len(codes) == 5  # each payment answered alike by both, or refused by one
        # Only the one that charged re-splits (the other answered from the ledger).
        assert sum(a.refresh is not None for a in both.answers) == 5
        statement = sv.SimulatedAcquirer(books=books).statement()
        assert len(statement) == 5  # one booking per payment, whichever gateway won
    finally:
        for c in clients:
            c.close_transport()
        for proc in started:
            proc.stop()
