"""Structured JSON logs: one access line per request, with its request id; rules, not paths."""

from __future__ import annotations

import io
import json
import logging

from flask import Flask

from mit_fhir.web.logs import RequestIdFilter, formatter


def _capture() -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter())
    handler.addFilter(RequestIdFilter())
    logging.getLogger("mit_fhir").addHandler(handler)
    return handler, stream


def test_access_lines_are_json_with_the_request_id(app: Flask) -> None:
    handler, stream = _capture()
    try:
        resp = app.test_client().get("/fhir/Observation/some-id?patient=Patient/secret-id",
                                     headers={"X-Request-ID": "req-42"})
    finally:
        logging.getLogger("mit_fhir").removeHandler(handler)
    assert resp.headers["X-Request-ID"] == "req-42"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [x for x in lines if x["logger"] == "mit_fhir.access"]
    assert access == [{**access[0], "message": "request", "method": "GET", "status": 404,
                       "route": "/fhir/Observation/<rid>", "request_id": "req-42",
                       "level": "INFO"}]
    assert access[0]["time"].endswith("+00:00")
    assert "secret-id" not in stream.getvalue() and "some-id" not in stream.getvalue()


def test_an_unusable_request_id_is_replaced(app: Flask) -> None:
    resp = app.test_client().get("/healthz", headers={"X-Request-ID": "a b; forged=line"})
    rid = resp.headers["X-Request-ID"]
    assert len(rid) == 32 and rid.isalnum()


def test_tracebacks_keep_frames_and_types_but_not_messages() -> None:
    from sqlalchemy import text

    handler, stream = _capture()
    log = logging.getLogger("mit_fhir.test")
    try:
        answer = "-".join(["Zebulon", "Quartz"])  # data at run time, not in the source line
        try:
            raise ValueError(f"the answer was {answer}")
        except ValueError:
            log.exception("failed")
    finally:
        logging.getLogger("mit_fhir").removeHandler(handler)
    record = json.loads(stream.getvalue().splitlines()[-1])
    assert "test_tracebacks_keep_frames" in record["exc_info"]
    assert record["exc_info"].endswith("builtins.ValueError")
    assert "Zebulon" not in stream.getvalue()
    # And the store's database errors do not quote the parameters they failed on.
    from mit_fhir.store.repository import Store

    store = Store("sqlite://")
    try:
        with store.transaction() as conn:
            conn.execute(text("SELECT * FROM nowhere WHERE x = :x"), {"x": answer})
    except Exception as exc:
        assert "Zebulon" not in str(exc)
    else:
        raise AssertionError("expected a database error")
