"""The read limits as an ASGI app, driven directly: what reaches the WSGI app, and when it doesn't.

The real server's answers (400, 408, 413 over the wire) are in tests/server/test_serve.py; here the
cases that need many requests at once or a look at the environ the Flask app gets.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from mit_fhir.server.limits import BufferedWSGI, ReadLimits


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/x", "raw_path": b"/x", "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8080)}


class Exchange:
    """One request: the body arrives in the given parts (None: the client stops sending)."""

    def __init__(self, parts: list[bytes | None]) -> None:
        self.parts = parts
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if not self.parts:
            await asyncio.sleep(3600)
        part = self.parts.pop(0)
        if part is None:
            await asyncio.sleep(3600)
        return {"type": "http.request", "body": part, "more_body": bool(self.parts)}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


def echo_environ(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"length": environ.get("CONTENT_LENGTH"), "body": body.decode(),
                        "chunked": "HTTP_TRANSFER_ENCODING" in environ}).encode()]


def test_a_chunked_body_reaches_the_app_with_its_length() -> None:
    app = BufferedWSGI(echo_environ, 2, ReadLimits())
    exchange = Exchange([b'{"a"', b": 1}", b""])
    asyncio.run(app(_scope([(b"transfer-encoding", b"chunked")]), exchange.receive,
                    exchange.send))
    assert exchange.status == 200
    assert json.loads(exchange.body) == {"length": "8", "body": '{"a": 1}', "chunked": False}


def test_requests_beyond_the_pending_limit_are_503_while_the_first_is_read() -> None:
    app = BufferedWSGI(echo_environ, 2, ReadLimits(body_timeout=60, max_pending=2))
    stalled = [Exchange([b"{", None]) for _ in range(2)]
    refused = Exchange([b"{}"])

    async def scenario() -> None:
        tasks = [asyncio.create_task(app(_scope([(b"content-length", b"10")]), e.receive,
                                         e.send)) for e in stalled]
        await asyncio.sleep(0.05)
        await app(_scope([(b"content-length", b"2")]), refused.receive, refused.send)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert app.pending == 0  # a cancelled (disconnected) request gives its place back

    asyncio.run(scenario())
    assert refused.status == 503
    assert dict(refused.sent[0]["headers"])[b"retry-after"] == b"1"
    assert json.loads(refused.body)["issue"][0]["code"] == "transient"
    assert not any(e.sent for e in stalled)


def test_an_answer_the_client_does_not_take_ends_at_the_send_deadline() -> None:
    app = BufferedWSGI(echo_environ, 2, ReadLimits(send_timeout=0.2))
    exchange = Exchange([b"{}"])
    taken: list[dict[str, Any]] = []

    async def stuck_send(message: dict[str, Any]) -> None:
        if taken:
            await asyncio.sleep(3600)  # the client's window is full: the write never drains
        taken.append(message)

    async def scenario() -> float:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            # wait_for: without the send deadline the test fails at 5 s instead of hanging.
            await asyncio.wait_for(
                app(_scope([(b"content-length", b"2")]), exchange.receive, stuck_send), 5)
        return asyncio.get_running_loop().time() - started

    assert asyncio.run(scenario()) < 2  # the deadline (0.2 s), not the test's guard
    assert app.pending == 0
    assert taken[0]["status"] == 200
