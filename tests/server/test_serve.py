"""The production server: `mit-fhir serve` (gunicorn's master, uvicorn workers) over real HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import FHIR_JSON, ROOT, fresh_database_url, sample, service_env, service_log
from tests.loopback import wait_healthy
from tests.servers.fixtures import free_port

BIN = Path(sys.executable).parent
STARTUP_SECONDS = 30
# The deadlines of the `strict` server: short, so that the tests of the deadlines are quick.
STRICT = {"HEADER_TIMEOUT": "1", "BODY_TIMEOUT": "1", "SEND_TIMEOUT": "1",
          "MAX_BODY_BYTES": "4096"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory, "serve")


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory, "serve-strict", **STRICT)


def _serve(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str,
           environ: dict[str, str] | None = None, **settings: str) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp(name)
    port = free_port()
    env = {**service_env(DATABASE_URL=fresh_database_url(tmp, name), **settings),
           **(environ or {})}
    log_path = service_log(name)
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(BIN / "mit-fhir"), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "2", *args],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_healthy(proc, base, log_path, STARTUP_SECONDS)
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def test_health_and_readiness(server: str) -> None:
    assert requests.get(f"{server}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{server}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"


def test_served_by_uvicorn_workers(server: str) -> None:
    resp = requests.get(f"{server}/fhir/metadata", timeout=5)
    assert resp.headers["Server"] == "uvicorn"


def test_metadata_over_http(server: str) -> None:
    resp = requests.get(f"{server}/fhir/metadata", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith(FHIR_JSON)
    body = resp.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    assert body["implementation"]["url"] == f"{server}/fhir"


def test_questionnaire_read_over_http(server: str) -> None:
    resp = requests.get(f"{server}/fhir/Questionnaire/phq-9", timeout=5)
    assert resp.status_code == 200
    assert resp.json()["url"] == "https://mit-fhir.org/fhir/Questionnaire/phq-9"


def test_submission_over_http(server: str) -> None:
    qr = sample("gad-7")
    qr["subject"] = {"reference": "Patient/serve-test"}
    resp = requests.post(
        f"{server}/fhir/QuestionnaireResponse", json=qr,
        headers={"Content-Type": FHIR_JSON}, timeout=10,
    )
    assert resp.status_code == 201, resp.text
    location = resp.headers["Location"]
    new_id = resp.json()["id"]
    assert location == f"{server}/fhir/QuestionnaireResponse/{new_id}/_history/1"

    # Any worker can read it back and find it.
    for _ in range(4):
        read = requests.get(f"{server}/fhir/QuestionnaireResponse/{new_id}", timeout=5)
        assert read.status_code == 200
        assert read.json()["item"] == qr["item"]
    found = requests.get(
        f"{server}/fhir/QuestionnaireResponse", params={"subject": "Patient/serve-test"},
        timeout=5,
    ).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [new_id]


def test_errors_over_http_are_outcomes(server: str) -> None:
    resp = requests.post(
        f"{server}/fhir/QuestionnaireResponse", data=b"{nope",
        headers={"Content-Type": FHIR_JSON}, timeout=5,
    )
    assert resp.status_code == 400
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_a_rebound_host_name_gets_nothing_over_http(server: str) -> None:
    # F4: a page rebound to 127.0.0.1 connects from loopback but sends its own name as Host.
    port = urlsplit(server).port
    qr = {**sample("gad-7"), "subject": {"reference": "Patient/serve-rebound"}}
    for host in (f"attacker.example:{port}", f"localhost:{port}"):
        write = requests.post(f"{server}/fhir/QuestionnaireResponse", json=qr, timeout=10,
                              headers={"Content-Type": FHIR_JSON, "Host": host})
        read = requests.get(f"{server}/fhir/QuestionnaireResponse", timeout=10,
                            params={"subject": "Patient/serve-rebound"}, headers={"Host": host})
        if host.startswith("attacker"):
            assert (write.status_code, read.status_code) == (400, 400)
            assert write.json()["resourceType"] == "OperationOutcome"
        else:
            assert (write.status_code, read.status_code) == (201, 200)
            assert len(read.json()["entry"]) == 1  # the refused write stored nothing


def test_python_m_mit_fhir_is_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mit_fhir", "--help"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    assert "wording" in result.stdout


def test_serve_refuses_a_bad_configuration() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIT_FHIR_")}
    env["MIT_FHIR_AUTH"] = "none"  # development mode: the tests serve on loopback
    env["MIT_FHIR_MAX_BODY_BYTES"] = "nope"
    result = subprocess.run(
        [str(BIN / "mit-fhir"), "serve", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, check=False,
    )
    assert result.returncode == 78  # EX_CONFIG
    assert "MIT_FHIR_MAX_BODY_BYTES" in result.stderr


def test_serve_on_an_unreachable_database_is_one_line() -> None:
    env = service_env(DATABASE_URL=f"postgres://mit:hunter2@127.0.0.1:{free_port()}/mit")
    result = subprocess.run(
        [str(BIN / "mit-fhir"), "serve", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, check=False,
    )
    assert result.returncode == 69  # EX_UNAVAILABLE
    assert result.stderr.strip().splitlines() == [
        "Error: cannot reach the database (PostgreSQL at 127.0.0.1:"
        + result.stderr.split("127.0.0.1:", 1)[1].strip()]
    assert "Connection refused" in result.stderr and "hunter2" not in result.stderr


def test_serve_on_an_unreadable_database_url_is_one_line_without_the_password() -> None:
    env = service_env(DATABASE_URL="postgresql://alice:S3cr3t@PW@127.0.0.1:5432/db")
    result = subprocess.run(
        [str(BIN / "mit-fhir"), "serve", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, check=False,
    )
    assert result.returncode == 78  # EX_CONFIG, not a traceback's 1
    (line,) = result.stderr.strip().splitlines()
    assert "percent-encoded as %40" in line
    assert "S3cr3t" not in result.stderr and "PW" not in result.stderr


# gunicorn's control socket: one per instance, or none ------------------------------------
def _master_of(path: Path) -> int:
    from gunicorn.ctl.client import ControlClient

    with ControlClient(str(path), timeout=10) as client:
        return int(client.send_command("show all")["arbiter"]["pid"])


def test_two_instances_on_one_host_keep_their_own_control_sockets(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    # gunicorn's default is one path per user and host ($XDG_RUNTIME_DIR/gunicorn.ctl, else
    # ~/.gunicorn/gunicorn.ctl): point both at this test's directories to see them unused.
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir()
    shared = {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    sockets = [tmp_path / "a" / "gunicorn.ctl", tmp_path / "b" / "gunicorn.ctl"]
    first = _serve(tmp_path_factory, "serve-ctl-a", "--control-socket", str(sockets[0]),
                   environ=shared)
    second = _serve(tmp_path_factory, "serve-ctl-b", "--control-socket", str(sockets[1]),
                    environ=shared)
    plain = _serve(tmp_path_factory, "serve-ctl-none", environ=shared)
    try:
        bases = [next(first), next(second), next(plain)]
        masters = [_master_of(path) for path in sockets]
        for master, base in zip(masters, bases, strict=False):
            # Each socket answers for the master serving its own instance's port.
            cmdline = Path(f"/proc/{master}/cmdline").read_bytes().split(b"\0")
            assert str(urlsplit(base).port).encode() in cmdline
        assert not (runtime / "gunicorn.ctl").exists()  # the third opened none
        assert not (home / ".gunicorn").exists()
        with pytest.raises(StopIteration):
            next(second)  # SIGTERM: the second removes its own socket, not the first's
        assert not sockets[1].exists()
        assert _master_of(sockets[0]) == masters[0]
    finally:
        for service in (first, second, plain):
            service.close()


# What a client can get wrong on the wire: each answer is an OperationOutcome, never a 500 ------
def raw(base: str, request: bytes, wait: float = 10) -> tuple[int, bytes, float]:
    """Send bytes on a new connection; (status, body, seconds) of the answer, read until closed."""
    where = urlsplit(base)
    started = time.monotonic()
    with socket.create_connection((where.hostname, where.port), timeout=wait) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body, time.monotonic() - started


def outcome_issue(body: bytes) -> dict[str, Any]:
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    issue: dict[str, Any] = outcome["issue"][0]
    return issue


def post_head(extra: str) -> bytes:
    return (f"POST /fhir/QuestionnaireResponse HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            f"Content-Type: {FHIR_JSON}\r\n{extra}\r\n").encode()


@pytest.mark.parametrize("chunks", [b"zz\r\nabc\r\n0\r\n\r\n", b"-1\r\nabc\r\n0\r\n\r\n",
                                    b"4 x\r\nabcd\r\n0\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n"])
def test_an_invalid_chunk_is_400_not_500(server: str, chunks: bytes) -> None:
    status, body, _ = raw(server, post_head("Transfer-Encoding: chunked\r\n") + chunks)
    assert status == 400
    assert outcome_issue(body)["code"] == "invalid"


def test_a_chunked_submission_is_stored(server: str) -> None:
    qr = sample("gad-7")
    qr["subject"] = {"reference": "Patient/serve-chunked"}
    data = json.dumps(qr).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                      for part in (data[:100], data[100:])) + b"0\r\n\r\n"
    status, body, _ = raw(server, post_head("Transfer-Encoding: chunked\r\n") + chunks)
    assert status == 201, body
    assert json.loads(body)["item"] == qr["item"]


def test_headers_that_do_not_arrive_in_time_are_408(strict: str) -> None:
    status, body, seconds = raw(strict, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
    assert status == 408
    assert outcome_issue(body)["code"] == "timeout"
    assert 0.9 <= seconds < 5


def test_a_body_that_does_not_arrive_in_time_is_408(strict: str) -> None:
    status, body, seconds = raw(strict, post_head("Content-Length: 200\r\n") + b'{"a": ')
    assert status == 408
    assert outcome_issue(body)["code"] == "timeout"
    assert 0.9 <= seconds < 5


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_body_above_the_cap_is_413(strict: str, framing: str) -> None:
    data = b"[" + b" " * 5000 + b"]"
    if framing == "length":
        request = post_head(f"Content-Length: {len(data)}\r\n") + data
    else:
        request = post_head("Transfer-Encoding: chunked\r\n") + b"".join(
            b"%x\r\n%s\r\n" % (len(data[i:i + 1000]), data[i:i + 1000])
            for i in range(0, len(data), 1000)) + b"0\r\n\r\n"
    status, body, _ = raw(strict, request)
    assert status == 413
    assert outcome_issue(body)["code"] == "too-long"


def test_the_client_address_is_the_peers_own(strict: str) -> None:
    # Development mode answers loopback callers only: a forwarded-for header must not move that.
    resp = requests.get(f"{strict}/fhir/Questionnaire/phq-9", timeout=5,
                        headers={"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9"})
    assert resp.status_code == 200


def test_unknown_methods_over_http_share_one_label(strict: str) -> None:
    for i in range(20):
        assert requests.request(f"X{i}Y", f"{strict}/fhir/metadata", timeout=5).status_code == 405
    text = requests.get(f"{strict}/metrics", timeout=5).text
    methods = set(re.findall(r'mit_fhir_http_requests_total\{[^}]*method="([^"]+)"', text))
    assert "OTHER" in methods
    assert not any(m.startswith("X") for m in methods), methods


def test_sigterm_does_not_wait_for_slow_clients(tmp_path_factory: pytest.TempPathFactory) -> None:
    # A request whose body is still arriving has reached no app code: it is closed at once,
    # and one trickling its headers too, so shutdown does not spend its graceful timeout.
    service = _serve(tmp_path_factory, "serve-stop")
    where = urlsplit(next(service))
    slow = []
    for i in range(6):
        sock = socket.create_connection((where.hostname, where.port), timeout=5)
        body_pending = post_head("Content-Length: 100\r\n") + b"{"
        sock.sendall(body_pending if i % 2 else b"GET / HTTP/1.1\r\n")
        slow.append(sock)
    time.sleep(0.5)
    started = time.monotonic()
    with pytest.raises(StopIteration):
        next(service)  # SIGTERM, then wait for the exit
    assert time.monotonic() - started < 8
    for sock in slow:
        sock.close()


def test_a_client_that_stops_reading_is_closed_after_the_send_deadline(strict: str) -> None:
    # Twenty pipelined reads of the catalogue (about 0.5 MB each) that the client never takes:
    # once the socket buffers are full the next part waits, and the deadline ends the connection.
    one = len(requests.get(f"{strict}/fhir/Questionnaire", timeout=30).content)
    where = urlsplit(strict)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /fhir/Questionnaire HTTP/1.1\r\nHost: localhost\r\n\r\n" * 20)
        time.sleep(4)
        received = 0
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
    assert received < 10 * one
    assert requests.get(f"{strict}/healthz", timeout=5).status_code == 200
