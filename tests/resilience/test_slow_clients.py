"""Slow clients cannot starve `mit-fhir serve` (issue 12, item 4), against the real server.

The server runs as shipped (2 workers x 4 threads, default read deadlines) on the run's
database. 64 connections are kept open for the whole run: half trickle one header line every
few seconds, half send a body shorter than their Content-Length and then a byte now and then.
Whenever the server ends one (its header or body deadline), another takes its place. Meanwhile
/healthz is probed on a new connection every 100 ms, as a liveness probe would, and
submissions are POSTed one after another: every probe must answer within 1 s at the 99th
percentile with no time-out, and every submission must be stored.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import FHIR_JSON, sample

SLOW_CONNECTIONS = 64
RUN_SECONDS = 25.0
TRICKLE_SECONDS = 3.0
PROBE_INTERVAL = 0.1
PROBE_TIMEOUT = 5.0
P99_LIMIT = 1.0


@dataclass
class SlowClients:
    """Keeps `count` slow connections open in one thread until `stop` is set."""

    host: str
    port: int
    count: int
    stop: threading.Event = field(default_factory=threading.Event)
    opened: int = 0
    ended_by_server: int = 0
    answers: dict[str, int] = field(default_factory=dict)

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        for i in range(self.count):
            self._open(sel, i % 2 == 0)
        next_trickle = time.monotonic() + TRICKLE_SECONDS
        while not self.stop.is_set():
            for key, _ in sel.select(timeout=0.2):
                self._read(sel, key)
            if time.monotonic() >= next_trickle:
                next_trickle += TRICKLE_SECONDS
                for key in list(sel.get_map().values()):
                    self._trickle(sel, key)
        for key in list(sel.get_map().values()):
            sel.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        sel.close()

    def _open(self, sel: selectors.BaseSelector, headers_only: bool) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=5)
        sock.setblocking(False)
        head = b"POST /fhir/QuestionnaireResponse HTTP/1.1\r\nHost: localhost\r\n"
        if headers_only:
            sock.sendall(head)  # the blank line that ends the headers never comes
        else:
            sock.sendall(head + f"Content-Type: {FHIR_JSON}\r\nContent-Length: 100000\r\n\r\n"
                         .encode() + b'{"resourceType": ')
        sel.register(sock, selectors.EVENT_READ, data=headers_only)
        self.opened += 1

    def _trickle(self, sel: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        try:
            key.fileobj.send(b"X-Slow: 1\r\n" if key.data else b" ")  # type: ignore[union-attr]
        except OSError:
            self._replace(sel, key)

    def _read(self, sel: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        try:
            data = key.fileobj.recv(65536)  # type: ignore[union-attr]
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data.startswith(b"HTTP/1.1 "):
            status = data[9:12].decode()
            self.answers[status] = self.answers.get(status, 0) + 1
        if not data:
            self._replace(sel, key)

    def _replace(self, sel: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        sel.unregister(key.fileobj)
        key.fileobj.close()  # type: ignore[union-attr]
        self.ended_by_server += 1
        if not self.stop.is_set():
            self._open(sel, key.data)


def _submissions(base: str, stop: threading.Event, statuses: list[int]) -> None:
    qr = sample("phq-9")
    with requests.Session() as session:
        while not stop.is_set():
            qr["subject"] = {"reference": f"Patient/slow-{len(statuses) % 7}"}
            qr["identifier"] = {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}
            try:
                resp = session.post(f"{base}/fhir/QuestionnaireResponse", data=json.dumps(qr),
                                    headers={"Content-Type": FHIR_JSON}, timeout=10)
                statuses.append(resp.status_code)
            except requests.RequestException:
                statuses.append(0)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@pytest.mark.slow
def test_healthz_and_submissions_outlast_64_slow_connections(live_base: str) -> None:
    shipped = live_base  # tests/resilience/conftest: `mit-fhir serve` as shipped, run's database
    where = urlsplit(shipped)
    slow = SlowClients(where.hostname or "127.0.0.1", where.port or 80, SLOW_CONNECTIONS)
    slow_thread = threading.Thread(target=slow.run, name="slow-clients", daemon=True)
    slow_thread.start()
    time.sleep(TRICKLE_SECONDS)  # every slow connection is open before the clock starts
    assert slow.opened >= SLOW_CONNECTIONS

    statuses: list[int] = []
    stop_posting = threading.Event()
    poster = threading.Thread(target=_submissions, args=(shipped, stop_posting, statuses),
                              name="submissions", daemon=True)
    poster.start()
    latencies: list[float] = []
    failures = 0
    try:
        end = time.monotonic() + RUN_SECONDS
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                ok = requests.get(f"{shipped}/healthz", timeout=PROBE_TIMEOUT,
                                  headers={"Connection": "close"}).status_code == 200
            except requests.RequestException:
                ok = False
            latencies.append(time.monotonic() - started)
            failures += not ok
            time.sleep(max(0.0, PROBE_INTERVAL - latencies[-1]))
    finally:
        stop_posting.set()
        poster.join(timeout=15)
        slow.stop.set()
        slow_thread.join(timeout=10)

    p99 = _p99(latencies)
    stored = statuses.count(201)
    print(f"\n/healthz: {len(latencies)} probes, p99 {p99 * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms, {failures} failed; submissions: {stored} stored "
          f"of {len(statuses)}; slow connections opened {slow.opened}, ended by the server "
          f"{slow.ended_by_server}, answers {slow.answers}")
    assert failures == 0
    assert p99 < P99_LIMIT
    assert statuses and all(s == 201 for s in statuses), sorted(set(statuses))
    assert stored >= 10
    # The deadlines, not the clients, ended the slow connections (408, then closed).
    assert slow.ended_by_server >= SLOW_CONNECTIONS // 2
    assert set(slow.answers) == {"408"}
