"""Structured JSON logs with a request id on every line; no patient data by construction.

Each request gets an id (the caller's X-Request-ID when it is a plain token, else a new one),
echoed in the response and carried by every log record made while the request runs. The access
line names the URL rule (`/fhir/Observation/<rid>`), never the raw path or query string, since
those can carry patient identifiers. The same JSON formatter serves gunicorn and the worker.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
import uuid
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
FORMAT = "%(levelname)s %(name)s %(message)s"
access_log = logging.getLogger("mit_fhir.access")


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to records made inside a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context() and not hasattr(record, "request_id"):
            record.request_id = g.get("request_id")
        return True


class _Formatter(JsonFormatter):
    """JSON lines whose tracebacks keep frames and exception types but drop the messages:
    an exception's text can hold data (a database error quotes the row it failed on)."""

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        _type, value, tb = ei
        chain = []
        for line in traceback.TracebackException(type(value), value, tb).format():
            chain.append(line)
        frames = [line for line in chain if line.startswith("  ") or line.startswith("Traceback")]
        return "".join(frames) + f"{type(value).__module__}.{type(value).__qualname__}"


def formatter() -> logging.Formatter:
    return _Formatter(FORMAT, timestamp="time",  # ISO 8601, UTC
                      rename_fields={"levelname": "level", "name": "logger"})


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr for the mit_fhir loggers (idempotent)."""
    logger = logging.getLogger("mit_fhir")
    logger.setLevel(level)
    if not any(getattr(h, "_mit_fhir", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(formatter())
        handler.addFilter(RequestIdFilter())
        handler._mit_fhir = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False


def gunicorn_logconfig(level: str = "INFO") -> dict[str, Any]:
    """gunicorn's own logs as JSON too; its access log is off (ours names rules, not paths)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json",
               "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "mit_fhir.web.logs.formatter"}},
        "handlers": {"stderr": handler},
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
        },
    }


def init_app(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_end)


def _begin() -> None:
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


def _end(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers["X-Request-ID"] = request_id
    started = g.get("request_started")
    access_log.info("request", extra={
        "method": request.method,
        "route": request.url_rule.rule if request.url_rule is not None else None,
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
        "client": getattr(g.get("principal"), "client_id", None),
    })
    return response
