"""Read limits of `mit-fhir serve`: a request is read whole in the event loop, within deadlines.

A worker's event loop (uvicorn's h11 protocol) reads each request; only a complete one is handed
to a thread of the WSGI pool (a2wsgi), so a client that trickles its headers or sends a body
shorter than its Content-Length holds a socket and a little memory, never a thread:

- headers must arrive within `header_timeout` seconds of the request's first byte (or of the
  connection, for one that sends nothing): else 408 and the connection is closed;
- the body must arrive within `body_timeout` seconds of the headers: else 408, closed;
- a body above `max_body` bytes is 413 (at once when Content-Length says so);
- each part of the answer must be taken by the client within `send_timeout` seconds: else the
  connection is closed (a client that stops reading would otherwise keep its request, and
  the answer's bytes, for as long as it stays connected);
- at most `max_pending` requests per worker are being read or answered at once: beyond it 503,
  which bounds the memory of bodies being buffered to max_pending x max_body;
- a request that is not valid HTTP/1.1 (a bad chunk size, a bad Content-Length) is 400.

Every one of these answers is an OperationOutcome with `Connection: close`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import h11
import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

from mit_fhir.errors import FhirError, InvalidRequest, PayloadTooLarge, ServiceUnavailable
from mit_fhir.vocabulary import FHIR_JSON

log = logging.getLogger("mit_fhir.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class ReadLimits:
    """How long and how much a request may take to arrive (README: MIT_FHIR_* server settings)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_body: int = 1_048_576
    max_pending: int = 256
    send_timeout: float = 60.0

    @classmethod
    def from_config(cls, config: Any) -> ReadLimits:
        return cls(
            header_timeout=float(config["HEADER_TIMEOUT"]),
            body_timeout=float(config["BODY_TIMEOUT"]),
            max_body=int(config["MAX_BODY_BYTES"]),
            max_pending=int(config["MAX_PENDING_REQUESTS"]),
            send_timeout=float(config["SEND_TIMEOUT"]),
        )


def _outcome_body(error: FhirError) -> bytes:
    return orjson.dumps(error.outcome())


def _headers(body: bytes, extra: dict[str, str] | None = None) -> list[tuple[bytes, bytes]]:
    headers = {"content-type": FHIR_JSON, "content-length": str(len(body)),
               "connection": "close", **(extra or {})}
    return [(k.encode(), v.encode()) for k, v in headers.items()]


class RequestTimeout(FhirError):
    """408: the request did not arrive within the server's read deadline."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [], 408, "timeout")


class BufferedWSGI:
    """ASGI app that reads the whole body (size cap, deadline), then runs the WSGI app in a thread.

    The body is handed on with a Content-Length (a chunked body becomes an ordinary one, which
    Werkzeug reads; it would see an empty body otherwise).
    """

    def __init__(self, wsgi_app: Any, threads: int, limits: ReadLimits) -> None:
        self.wsgi_app = wsgi_app
        self.threads = threads
        self.limits = limits
        self.pending = 0
        self._bridge: ASGIApp | None = None

    def bridge(self) -> ASGIApp:
        # Built in the worker on first use: a thread pool must not be made before gunicorn forks.
        if self._bridge is None:
            from a2wsgi import WSGIMiddleware

            self._bridge = WSGIMiddleware(self.wsgi_app, workers=self.threads)  # type: ignore[assignment]
        assert self._bridge is not None
        return self._bridge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not served
        if self.pending >= self.limits.max_pending:
            await _answer(send, ServiceUnavailable("the server is busy; retry shortly"),
                          {"retry-after": "1"})
            return
        self.pending += 1
        try:
            await self._handle(scope, receive, send)
        finally:
            self.pending -= 1

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in scope["headers"]
                   if k not in (b"content-length", b"transfer-encoding")]
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and int(declared) > self.limits.max_body:
            await _answer(send, _too_large(self.limits.max_body))
            return
        body = bytearray()
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                more = True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > self.limits.max_body:
                        await _answer(send, _too_large(self.limits.max_body))
                        return
        except TimeoutError:
            log.warning("request body not received within %.0fs", self.limits.body_timeout)
            await _answer(send, RequestTimeout("the request body did not arrive in time"))
            return
        if body or declared is not None:
            headers.append((b"content-length", str(len(body)).encode()))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        async def timed_send(message: Message) -> None:
            async with asyncio.timeout(self.limits.send_timeout):
                await send(message)

        try:
            await self.bridge()({**scope, "headers": headers}, replay, timed_send)
        except TimeoutError:
            # Raised through uvicorn, which closes the connection of a response it has begun.
            log.warning("answer not taken by the client within %.0fs", self.limits.send_timeout)
            raise


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the body is larger than {limit} bytes (MIT_FHIR_MAX_BODY_BYTES)")


async def _answer(send: Send, error: FhirError, extra: dict[str, str] | None = None) -> None:
    body = _outcome_body(error)
    await send({"type": "http.response.start", "status": error.status,
                "headers": _headers(body, extra)})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and OperationOutcome protocol errors.

    uvicorn itself has no header deadline: a connection trickling header lines stays open for
    as long as the client likes. `header_timeout` is set on a subclass by `protocol_class`.
    """

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm_header_timer()  # a request has begun (or is awaited): headers are due
        else:
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.our_state is h11.IDLE:
            # No request was parsed, so h11 has no response to send: the bytes are written here.
            body = _outcome_body(RequestTimeout("the request headers did not arrive in time"))
            head = b"HTTP/1.1 408 Request Timeout\r\n" + b"".join(
                k + b": " + v + b"\r\n" for k, v in _headers(body)) + b"\r\n"
            self.transport.write(head + body)
        self.transport.close()

    def shutdown(self) -> None:
        # A request whose body is still arriving has not reached the app: closing it now loses
        # nothing, where waiting would spend the graceful timeout on a slow client.
        if (self.cycle is not None and not self.cycle.response_complete
                and self.conn.their_state is h11.SEND_BODY):
            self.transport.close()
            return
        super().shutdown()

    def send_400_response(self, msg: str) -> None:
        body = _outcome_body(InvalidRequest("the request is not valid HTTP/1.1"))
        try:
            output = self.conn.send(h11.Response(status_code=400, headers=_headers(body),
                                                 reason=b"Bad Request"))
            output += self.conn.send(h11.Data(data=body)) or b""
            output += self.conn.send(h11.EndOfMessage()) or b""
            self.transport.write(output or b"")
        except h11.LocalProtocolError:
            pass  # a response had already begun: closing is all that is left
        self.transport.close()


def protocol_class(limits: ReadLimits) -> type[DeadlineH11Protocol]:
    """The protocol with this configuration's header deadline."""
    return type("ConfiguredH11Protocol", (DeadlineH11Protocol,),
                {"header_timeout": limits.header_timeout})
