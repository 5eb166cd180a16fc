"""EhrClient against answers a real server won't give on demand (429, 503 storms, resets)."""

from __future__ import annotations

import email.utils
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from mit_fhir.ehr.auth import BearerAuth, NoAuth
from mit_fhir.ehr.client import Capabilities, EhrClient, retry_after
from mit_fhir.ehr.errors import EhrConflict, EhrRejected, EhrRetryable

BASE = "http://ehr.test/fhir"
FHIR_JSON = "application/fhir+json"


def outcome(code: str, diagnostics: str = "") -> dict[str, Any]:
    issue = {"severity": "error", "code": code}
    if diagnostics:
        issue["diagnostics"] = diagnostics
    return {"resourceType": "OperationOutcome", "issue": [issue]}


@pytest.fixture
def ehr() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def client() -> EhrClient:
    return EhrClient(BASE, NoAuth(), timeout=3.5)


# Retry-After ------------------------------------------------------------------------------------
def test_429_retry_after_seconds(ehr: responses.RequestsMock, client: EhrClient) -> None:
    ehr.get(f"{BASE}/metadata", status=429, headers={"Retry-After": "120"})
    with pytest.raises(EhrRetryable) as err:
        client.capabilities()
    assert err.value.status == 429
    assert err.value.retry_after == 120.0


def test_429_retry_after_http_date(ehr: responses.RequestsMock, client: EhrClient) -> None:
    when = email.utils.formatdate(time.time() + 90, usegmt=True)
    ehr.post(BASE, status=429, headers={"Retry-After": when}, json=outcome("throttled"))
    with pytest.raises(EhrRetryable) as err:
        client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": []})
    assert err.value.retry_after is not None
    assert 85 <= err.value.retry_after <= 90
    assert err.value.outcome == outcome("throttled")


@pytest.mark.parametrize(("header", "expected"), [
    ("0", 0.0),
    (" 7 ", 7.0),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: no wait
    ("soon", None),
    ("-5", None),
    ("", None),
])
def test_retry_after_parsing(header: str, expected: float | None) -> None:
    assert retry_after(header) == expected


def test_retry_after_date_against_a_given_clock() -> None:
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT",
                       now=email.utils.parsedate_to_datetime(
                           "Wed, 21 Oct 2015 07:26:00 GMT").timestamp()) == 120.0


def test_503_without_retry_after(ehr: responses.RequestsMock, client: EhrClient) -> None:
    ehr.get(f"{BASE}/metadata", status=503, body="Service Unavailable")
    with pytest.raises(EhrRetryable) as err:
        client.capabilities()
    assert (err.value.status, err.value.retry_after, err.value.outcome) == (503, None, None)


def test_503_storm_is_left_to_the_outbox(ehr: responses.RequestsMock, client: EhrClient) -> None:
    """Each call fails fast: the client does not sleep through a storm in a request thread."""
    ehr.get(f"{BASE}/Observation", status=503, headers={"Retry-After": "30"})
    started = time.monotonic()
    for _ in range(20):
        with pytest.raises(EhrRetryable) as err:
            client.search("Observation", {"code": "x"})
        assert err.value.retry_after == 30.0
    assert len(ehr.calls) == 20
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("status", [408, 409, 500, 502, 504])
def test_transient_statuses_are_retryable(ehr: responses.RequestsMock, client: EhrClient,
                                          status: int) -> None:
    ehr.put(f"{BASE}/CarePlan/1", status=status, json=outcome("transient"))
    with pytest.raises(EhrRetryable) as err:
        client.request("PUT", "CarePlan/1", {"resourceType": "CarePlan", "id": "1"})
    assert err.value.status == status
    assert err.value.outcome == outcome("transient")


# Network failures -------------------------------------------------------------------------------
@pytest.mark.parametrize("exc", [
    requests.ConnectionError("Connection reset by peer"),
    requests.ReadTimeout("read timed out"),
    requests.ConnectTimeout("connect timed out"),
    requests.exceptions.ChunkedEncodingError("connection broken"),
])
def test_network_failures_are_retryable(ehr: responses.RequestsMock, client: EhrClient,
                                        exc: Exception) -> None:
    ehr.get(f"{BASE}/Observation", body=exc)
    with pytest.raises(EhrRetryable) as err:
        client.request("GET", "Observation?identifier=urn:mrn|12345")
    assert err.value.status == 0
    assert type(exc).__name__ in str(err.value)
    assert "12345" not in str(err.value)  # the query may identify a patient


def test_requests_carry_the_timeout_and_fhir_headers(ehr: responses.RequestsMock,
                                                     client: EhrClient) -> None:
    ehr.post(f"{BASE}/Observation", status=201, json={"resourceType": "Observation", "id": "9"},
             match=[matchers.header_matcher({"Accept": FHIR_JSON, "Content-Type": FHIR_JSON})])
    client.request("POST", "Observation", {"resourceType": "Observation"})
    assert ehr.calls[0].request.req_kwargs["timeout"] == 3.5  # type: ignore[attr-defined]


def test_connection_drop_is_retried_by_urllib3() -> None:
    """A real socket that drops the first connection unanswered; the second is served."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    seen: list[int] = []

    def serve() -> None:
        for n in range(2):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                seen.append(n)
                if n == 1:
                    body = json.dumps({"resourceType": "CapabilityStatement"}).encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                                 b"Connection: close\r\nContent-Length: "
                                 + str(len(body)).encode() + b"\r\n\r\n" + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = EhrClient(f"http://127.0.0.1:{port}/fhir", NoAuth(), timeout=5)
        assert client.capabilities() == Capabilities()
    finally:
        thread.join(timeout=5)
        listener.close()
    assert seen == [0, 1]


# Bodies -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("body", ["<html><body>502 Bad Gateway</body></html>", "[]", '"ok"', ""])
def test_malformed_2xx_body_is_retryable(ehr: responses.RequestsMock, client: EhrClient,
                                         body: str) -> None:
    ehr.post(BASE, status=200, body=body, content_type=FHIR_JSON)
    with pytest.raises(EhrRetryable) as err:
        client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": []})
    assert err.value.status == 200


def test_transaction_posts_to_the_base_without_trailing_slash(ehr: responses.RequestsMock,
                                                              client: EhrClient) -> None:
    ehr.post(BASE, json={"resourceType": "Bundle", "type": "transaction-response", "entry": []})
    client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": []})
    assert ehr.calls[0].request.url == BASE


# 4xx --------------------------------------------------------------------------------------------
def test_412_is_a_conflict(ehr: responses.RequestsMock, client: EhrClient) -> None:
    ehr.put(f"{BASE}/CarePlan/7", status=412, json=outcome("conflict", "version mismatch"),
            match=[matchers.header_matcher({"If-Match": 'W/"3"'})])
    with pytest.raises(EhrConflict) as err:
        client.request("PUT", "CarePlan/7", {"resourceType": "CarePlan", "id": "7"},
                       {"If-Match": 'W/"3"'})
    assert err.value.status == 412
    assert err.value.outcome == outcome("conflict", "version mismatch")


@pytest.mark.parametrize(("status", "code"), [(400, "invalid"), (403, "forbidden"),
                                              (404, "not-found"), (422, "processing")])
def test_client_errors_are_rejected_with_the_outcome(ehr: responses.RequestsMock,
                                                     client: EhrClient, status: int,
                                                     code: str) -> None:
    body = outcome(code, "Observation.subject: Patient/123 (Jane Roe) not found")
    ehr.post(f"{BASE}/Observation", status=status, json=body)
    with pytest.raises(EhrRejected) as err:
        client.request("POST", "Observation", {"resourceType": "Observation"})
    assert err.value.status == status
    assert err.value.outcome == body
    assert "Jane Roe" not in str(err.value)


def test_rejection_without_an_outcome(ehr: responses.RequestsMock, client: EhrClient) -> None:
    ehr.post(f"{BASE}/Observation", status=400, body="Bad Request", content_type="text/plain")
    with pytest.raises(EhrRejected) as err:
        client.request("POST", "Observation", {"resourceType": "Observation"})
    assert (err.value.status, err.value.outcome) == (400, None)


def test_401_is_retried_once_then_rejected(ehr: responses.RequestsMock) -> None:
    class CountingAuth(NoAuth):
        invalidated = 0

        def invalidate(self) -> None:
            self.invalidated += 1

    auth = CountingAuth()
    ehr.get(f"{BASE}/metadata", status=401, json=outcome("login"))
    with pytest.raises(EhrRejected) as err:
        EhrClient(BASE, auth).capabilities()
    assert err.value.status == 401
    assert len(ehr.calls) == 2
    assert auth.invalidated == 1


# Capabilities and search ------------------------------------------------------------------------
def test_capabilities_read_once(ehr: responses.RequestsMock, client: EhrClient) -> None:
    ehr.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "rest": [
        {"mode": "client", "interaction": [{"code": "transaction"}]},
        {"mode": "server", "interaction": [{"code": "batch"}], "resource": [
            {"type": "Observation", "conditionalCreate": True, "versioning": "versioned-update",
             "searchParam": [{"name": "identifier", "type": "token"}]},
            {"type": "CarePlan", "conditionalUpdate": True}]}]})
    caps = client.capabilities()
    assert client.capabilities() is caps
    assert len(ehr.calls) == 1
    assert caps == Capabilities(transaction=False, batch=True, conditional_create={"Observation"},
                                conditional_update={"CarePlan"},
                                versioned_update={"Observation"},
                                identifier_search={"Observation"})


def _page(ids: list[str], nxt: str | None = None) -> dict[str, Any]:
    links = [{"relation": "self", "url": "ignored"}]
    if nxt:
        links.append({"relation": "next", "url": nxt})
    return {"resourceType": "Bundle", "type": "searchset", "link": links,
            "entry": [{"fullUrl": f"{BASE}/Observation/{i}",
                       "resource": {"resourceType": "Observation", "id": i}} for i in ids]
            + [{"search": {"mode": "outcome"}}]}


def test_search_follows_next_links(ehr: responses.RequestsMock, client: EhrClient) -> None:
    ehr.get(f"{BASE}/Observation",
            match=[matchers.query_param_matcher({"identifier": "urn:sys|a", "_count": "2"})],
            json=_page(["1", "2"], f"{BASE}/Observation?identifier=urn:sys|a&_count=2&page=2"))
    ehr.get(f"{BASE}/Observation",
            match=[matchers.query_param_matcher({"identifier": "urn:sys|a", "_count": "2",
                                                 "page": "2"})],
            json=_page(["3", "4"], f"{BASE}?_getpages=abc&_getpagesoffset=4"))  # HAPI style
    ehr.get(BASE, match=[matchers.query_param_matcher({"_getpages": "abc",
                                                       "_getpagesoffset": "4"})],
            json=_page(["5"]))

    found = client.search("Observation", {"identifier": "urn:sys|a", "_count": "2"})

    assert [r["id"] for r in found] == ["1", "2", "3", "4", "5"]
    assert len(ehr.calls) == 3


def test_search_is_bounded(ehr: responses.RequestsMock, client: EhrClient) -> None:
    ehr.get(f"{BASE}/Observation", json=_page(["x"], f"{BASE}/Observation?again=1"))
    found = client.search("Observation", {})
    assert len(found) == 50
    assert len(ehr.calls) == 50  # no page fetched only to be thrown away


def test_search_never_sends_credentials_to_another_host(ehr: responses.RequestsMock) -> None:
    ehr.get(f"{BASE}/Observation", json=_page(["1"], "http://attacker.test/collect?page=2"))
    ehr.get("http://attacker.test/collect", json=_page(["2"]))
    client = EhrClient(BASE, BearerAuth("s3cret"))
    with pytest.raises(EhrRejected, match="origin"):
        client.search("Observation", {})
    assert [str(c.request.url).split("?")[0] for c in ehr.calls] == [f"{BASE}/Observation"]


def test_search_failure_midway_is_retryable(ehr: responses.RequestsMock,
                                            client: EhrClient) -> None:
    ehr.get(f"{BASE}/Observation", match=[matchers.query_param_matcher({})],
            json=_page(["1"], f"{BASE}/Observation?page=2"))
    ehr.get(f"{BASE}/Observation", match=[matchers.query_param_matcher({"page": "2"})],
            body=requests.ConnectionError("reset"))
    with pytest.raises(EhrRetryable):
        client.search("Observation", {})
