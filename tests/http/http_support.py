"""Helpers shared by the HTTP tests (a module, not fixtures, so threads can use them)."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

import splitvault as sv
from splitvault.crypto.signing import sign
from splitvault.hazmat import BlindedPin, DeviceCard, EvaluateRequest, device_possession
from splitvault.server import Kek

PIN = "739184"
WRONG = "580247"
PAN = "4111111111111111"


def card() -> sv.Card:
    return sv.Card(pan=PAN, expiry="12/30", holder="KIM MINSU")


def enroll(device: sv.Device, digits: str = PIN) -> str:
    with sv.Pin.from_digits(digits) as pin:
        return device.enroll(card(), pin)


def pay(device: sv.Device, card_id: str, digits: str = PIN, key: str = "order-1",
        amount: int = 12000) -> sv.Authorization:
    with sv.Pin.from_digits(digits) as pin:
        return device.authorize(card_id, pin, amount=amount, currency="KRW",
                                merchant="Coffee Lab", idempotency_key=key)


def device_card(device: sv.Device, card_id: str) -> DeviceCard:
    """The device's stored keys for a card (test-only peek behind the API)."""
    return device._store.get(card_id)


def signed_evaluate(stored: DeviceCard, digits: str = WRONG) -> EvaluateRequest:
    """An evaluate request exactly as Device._prove_pin builds it (a fresh nonce, the
    current time): one counted guess."""
    with sv.Pin.from_digits(digits) as pin, BlindedPin(stored.card_id, pin) as blinded:
        request = EvaluateRequest(stored.card_id, secrets.token_bytes(16),
                                  int(time.time() * 1000), blinded.blinded, b"",
                                  stored.share_version)
    request = dataclasses.replace(
        request, signature=sign(stored.sign_seed, request.signed_bytes()))
    return dataclasses.replace(request, possession=device_possession(stored, request))


START_TIMEOUT = 20.0


def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    for line in proc.stdout or ():
        lines.put(line)


class ServerProcess:
    """One server database and key file; the process can be started, stopped and
    killed any number of times, on the same port after the first start."""

    def __init__(self, root: Path, *args: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.db = root / "server.db"
        self.kek = root / "kek.key"
        self.log = root / "server.log"
        self.args = list(args)
        self.port = 0
        self.url = ""
        self.fingerprint: str | None = None
        self.proc: subprocess.Popen[str] | None = None
        Kek.generate().write(self.kek)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "splitvault.server._serve", "--db", str(self.db),
                "--kek-file", str(self.kek), "--port", str(self.port), "--host", "127.0.0.1",
                "--rate-limit", "0", *self.args]  # one test address; tests add their own

    def start(self) -> ServerProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=log,
                                         text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc, lines), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        url = None
        while url is None:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise RuntimeError(f"server did not start: {self.log.read_text()}") from None
            if "fingerprint:" in line:
                self.fingerprint = line.split()[-1]
            elif "listening on" in line:
                url = line.split()[-1]
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self._wait_healthy(deadline)
        return self

    def _wait_healthy(self, deadline: float) -> None:
        with httpx.Client(verify=False, timeout=2.0) as client:  # noqa: S501  (probe only)
            while time.monotonic() < deadline:
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise RuntimeError("server never became healthy")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not finish; the exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
        return proc.returncode

    def kill(self) -> None:
        """kill -9: no shutdown at all."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    def inspect(self) -> sv.ShareServer:
        """A second ShareServer on the same database, to read state behind the API."""
        return sv.ShareServer.open(self.db, kek_file=self.kek)

    def audit_entries(self) -> int:
        with self.inspect() as server:
            return server.verify_audit().entries

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]
