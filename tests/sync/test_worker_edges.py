"""The sync worker against EHR answers a real server won't give on demand (`responses`).

The outbox is filled the way production fills it: samples submitted through the API of an app
whose MIT_FHIR_EHR_BASE_URL is set. Time is a fake clock and jitter a constant, so backoff
delays compare exactly.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from mit_fhir.app import create_app
from mit_fhir.cli import main
from mit_fhir.ehr.auth import NoAuth
from mit_fhir.ehr.client import EhrClient
from mit_fhir.fhir.extract import IDENTIFIER_SYSTEM as OBS_SYSTEM
from mit_fhir.store import repository
from mit_fhir.store.schema import outbox, sync_link
from mit_fhir.sync.outbox import Item as OutboxItem
from mit_fhir.sync.outbox import claim as outbox_claim
from mit_fhir.sync.requests import Link
from mit_fhir.sync.worker import SyncSettings, Worker
from mit_fhir.sync.worker import _save_links as save_links
from mit_fhir.usecases.submissions import QR_IDENTIFIER_SYSTEM
from mit_fhir.vocabulary import SYNCED_TYPES
from tests.conftest import FHIR_JSON, sample

BASE = "http://ehr.test/fhir"
Resource = dict[str, Any]
Reply = tuple[int, dict[str, str], str]


# The EHR, as `responses` plays it ---------------------------------------------------------------
def capability_statement(conditional: bool = True, transaction: bool = True) -> Resource:
    resources = []
    for rtype in sorted(SYNCED_TYPES):
        entry: Resource = {"type": rtype, "versioning": "versioned-update",
                           "searchParam": [{"name": "identifier", "type": "token"}]}
        if conditional:
            entry["conditionalCreate"] = True
        resources.append(entry)
    interactions = [{"code": "transaction"}] if transaction else []
    return {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
            "fhirVersion": "4.0.1",
            "rest": [{"mode": "server", "interaction": interactions, "resource": resources}]}


def outcome(code: str, diagnostics: str) -> Resource:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]}


class FakeEhr:
    """Records what the worker sends; answers with success unless a test says otherwise."""

    def __init__(self, mock: responses.RequestsMock, statement: Resource) -> None:
        self.bundles: list[Resource] = []
        self.writes: list[tuple[str, str, dict[str, str], Resource]] = []
        self.searches: list[tuple[str, str]] = []
        self.search_results: dict[str, list[Resource]] = {}
        self.transaction_reply: Callable[[Resource], Reply] = self.accept_transaction
        self.write_reply: Callable[[str, str, Resource], Reply | None] = lambda *_: None
        self._ids = itertools.count(1)
        mock.get(f"{BASE}/metadata", json=statement)
        mock.add_callback(responses.POST, BASE, callback=self._transaction)
        mock.add_callback(responses.POST, re.compile(rf"{BASE}/[A-Z]\w+"), callback=self._write)
        mock.add_callback(responses.PUT, re.compile(rf"{BASE}/[A-Z]\w+/[^/?]+"),
                          callback=self._write)
        mock.add_callback(responses.GET, re.compile(rf"{BASE}/[A-Z]\w+"), callback=self._search)

    def accept_transaction(self, bundle: Resource) -> Reply:
        entries = []
        for entry in bundle["entry"]:
            req = entry["request"]
            rtype = req["url"].split("/")[0]
            rid = req["url"].split("/")[1] if req["method"] == "PUT" else f"ehr-{next(self._ids)}"
            version = "2" if req["method"] == "PUT" else "1"
            entries.append({"response": {
                "status": "200 OK" if req["method"] == "PUT" else "201 Created",
                "location": f"{rtype}/{rid}/_history/{version}", "etag": f'W/"{version}"'}})
        return _json(200, {"resourceType": "Bundle", "type": "transaction-response",
                           "entry": entries})

    def _transaction(self, request: requests.PreparedRequest) -> Reply:
        bundle = json.loads(_body(request))
        self.bundles.append(bundle)
        return self.transaction_reply(bundle)

    def _write(self, request: requests.PreparedRequest) -> Reply:
        path = (request.url or "")[len(BASE) + 1:]
        body = json.loads(_body(request))
        self.writes.append((request.method or "", path, {k: str(v) for k, v in
                                                         request.headers.items()}, body))
        reply = self.write_reply(request.method or "", path, body)
        if reply is not None:
            return reply
        if request.method == "PUT":
            return 200, {"ETag": 'W/"2"'}, ""
        rid = f"ehr-{next(self._ids)}"
        return 201, {"Location": f"{BASE}/{path}/{rid}/_history/1", "ETag": 'W/"1"'}, ""

    def _search(self, request: requests.PreparedRequest) -> Reply:
        rtype = (request.url or "")[len(BASE) + 1:].split("?")[0]
        self.searches.append((rtype, request.url or ""))
        # Like a server that ignores a filter it does not know: everything of the type.
        return _json(200, {"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": r} for r in self.search_results.get(rtype, [])]})


def _body(request: requests.PreparedRequest) -> bytes:
    body = request.body
    return body if isinstance(body, bytes) else str(body or "{}").encode()


def _json(status: int, body: Resource, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": FHIR_JSON, **(headers or {})}, json.dumps(body)


class FakeClock:
    """Frozen time that starts when first read, so after the submissions (whose rows use the
    real time): a clock frozen at fixture set-up ran behind them on a loaded machine."""

    def __init__(self) -> None:
        self._now: float | None = None

    @property
    def now(self) -> float:
        if self._now is None:
            self._now = time.time() + 1
        return self._now

    @now.setter
    def now(self, value: float) -> None:
        self._now = value

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self._now = self.now + seconds


# Fixtures and helpers ---------------------------------------------------------------------------
@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url


@pytest.fixture
def sync_app(db_url: str) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": db_url, "EHR_BASE_URL": BASE})
    yield app
    app.extensions["mit_fhir"].store.dispose()


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def ehr(mock: responses.RequestsMock) -> FakeEhr:
    return FakeEhr(mock, capability_statement())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def submit(app: Flask, questionnaire: str, name: str = "complete") -> Resource:
    resp = app.test_client().post("/fhir/QuestionnaireResponse", content_type=FHIR_JSON,
                                  data=json.dumps(sample(questionnaire, name)))
    assert resp.status_code == 201, resp.get_json()
    body: Resource = resp.get_json()
    return body


def worker(app: Flask, clock: FakeClock, rand: float = 0.5, **settings: Any) -> Worker:
    return Worker(app.extensions["mit_fhir"].store, EhrClient(BASE, NoAuth()),
                  SyncSettings(**settings), worker_id="w1", clock=clock, rand=lambda: rand)


def rows(app: Flask, state: str | None = None) -> list[Any]:
    query = select(outbox).order_by(outbox.c.id)
    if state:
        query = query.where(outbox.c.state == state)
    with app.extensions["mit_fhir"].store.transaction() as conn:
        return list(conn.execute(query).all())


def links(app: Flask) -> dict[tuple[str, str], Any]:
    with app.extensions["mit_fhir"].store.transaction() as conn:
        return {(r.resource_type, r.resource_id): r for r in conn.execute(select(sync_link))}


def identifier_value(res: Resource) -> str:
    ident = res["identifier"]
    return str((ident if isinstance(ident, dict) else ident[0])["value"])


def redeliver(app: Flask, clock: FakeClock, lease: float = 120.0) -> None:
    """A worker claims every due row and dies before settling; its lease then runs out."""
    # Rows submitted since the clock was made carry the real time: a slow machine (or a run
    # beside another) can leave them after the fake "now", so they would not be due yet.
    clock.now = max(clock.now, time.time() + 1)
    with app.extensions["mit_fhir"].store.transaction() as conn:
        assert outbox_claim(conn, "crashed", 1000, clock(), lease)
    clock.advance(lease + 1)


# Creates: plain on a first delivery, conditional once one may have reached the EHR -------------
def test_first_delivery_creates_plainly_in_one_bundle(sync_app: Flask, ehr: FakeEhr,
                                                      clock: FakeClock) -> None:
    submit(sync_app, "phq-9")
    submit(sync_app, "scl-90-r")
    assert worker(sync_app, clock).run_once() == 18
    [bundle] = ehr.bundles  # 18 entries: more than a conditional Bundle may hold
    assert len(bundle["entry"]) == 18
    assert all("ifNoneExist" not in e["request"] for e in bundle["entry"])
    assert {r.state for r in rows(sync_app)} == {"sent"}


def test_transaction_with_conditional_creates(sync_app: Flask, ehr: FakeEhr,
                                              clock: FakeClock) -> None:
    qr = submit(sync_app, "phq-9")
    assert [r.state for r in rows(sync_app)] == ["pending"] * 4
    redeliver(sync_app, clock)

    assert worker(sync_app, clock).run_once() == 4

    [bundle] = ehr.bundles
    assert bundle["type"] == "transaction"
    entries = bundle["entry"]
    assert [e["resource"]["resourceType"] for e in entries] == [
        "QuestionnaireResponse", "Observation", "Observation", "Observation"]
    for entry in entries:
        res = entry["resource"]
        system = QR_IDENTIFIER_SYSTEM if res["resourceType"] == "QuestionnaireResponse" \
            else OBS_SYSTEM
        assert entry["request"]["method"] == "POST"
        assert entry["request"]["url"] == res["resourceType"]
        assert entry["request"]["ifNoneExist"] == (
            f"identifier={system}|{identifier_value(res)}".replace("|", "%7C"))
        assert entry["fullUrl"].startswith("urn:uuid:")
        assert "id" not in res and "versionId" not in res.get("meta", {})
    qr_url = f"urn:uuid:{qr['id']}"
    assert all(e["resource"]["derivedFrom"] == [{"reference": qr_url}] for e in entries[1:])
    assert [r.state for r in rows(sync_app)] == ["sent"] * 4
    assert {link.remote_version for link in links(sync_app).values()} == {"1"}
    assert worker(sync_app, clock).run_once() == 0


# Transient failures: backoff, Retry-After, giving up --------------------------------------------
def test_503_retries_later_with_growing_backoff(sync_app: Flask, ehr: FakeEhr,
                                                clock: FakeClock) -> None:
    ehr.transaction_reply = lambda _b: (503, {}, "Service Unavailable")
    submit(sync_app, "phq-9")
    sync = worker(sync_app, clock, backoff_base=2.0, max_attempts=10)

    delays = []
    for attempt in range(1, 5):
        assert sync.run_once() == 4
        pending = rows(sync_app, "pending")
        assert len(pending) == 4
        assert {r.attempts for r in pending} == {attempt}
        assert {r.last_status for r in pending} == {503}
        assert {r.lease_until for r in pending} == {None}
        delays.append(pending[0].next_attempt_at - clock.now)
        assert sync.run_once() == 0  # nothing is due before the backoff runs out
        clock.advance(delays[-1])

    # equal jitter with rand = 0.5: three quarters of base * 2**attempts
    assert delays == pytest.approx([1.5, 3.0, 6.0, 12.0])


@pytest.mark.parametrize(("rand", "delay"), [(0.0, 4.0), (0.999, 7.996)])
def test_backoff_is_jittered_between_half_and_full(sync_app: Flask, ehr: FakeEhr,
                                                   clock: FakeClock, rand: float,
                                                   delay: float) -> None:
    ehr.transaction_reply = lambda _b: (502, {}, "")
    submit(sync_app, "phq-9")
    sync = worker(sync_app, clock, rand=rand, backoff_base=8.0)
    sync.run_once()
    assert rows(sync_app)[0].next_attempt_at - clock.now == pytest.approx(delay)


def test_backoff_is_capped(sync_app: Flask, ehr: FakeEhr, clock: FakeClock) -> None:
    ehr.transaction_reply = lambda _b: (500, {}, "")
    submit(sync_app, "phq-9")
    sync = worker(sync_app, clock, backoff_base=60.0, backoff_max=100.0, max_attempts=10)
    for _ in range(4):
        sync.run_once()
        clock.advance(200)
    assert rows(sync_app)[0].next_attempt_at - (clock.now - 200) == pytest.approx(75.0)


@pytest.mark.parametrize(("retry_after", "expected"), [("120", 120.0), ("0", 0.75)])
def test_429_retry_after_is_honoured_when_longer(sync_app: Flask, ehr: FakeEhr, clock: FakeClock,
                                                 retry_after: str, expected: float) -> None:
    ehr.transaction_reply = lambda _b: (429, {"Retry-After": retry_after}, "")
    submit(sync_app, "phq-9")
    worker(sync_app, clock).run_once()
    assert [r.next_attempt_at - clock.now for r in rows(sync_app)] == pytest.approx([expected] * 4)
    assert {r.last_status for r in rows(sync_app)} == {429}


def test_parked_failed_after_max_attempts(sync_app: Flask, ehr: FakeEhr,
                                          clock: FakeClock) -> None:
    ehr.transaction_reply = lambda _b: (503, {}, "")
    submit(sync_app, "phq-9")
    sync = worker(sync_app, clock, max_attempts=3)
    for _ in range(3):
        assert sync.run_once() == 4
        clock.advance(3600)
    assert {(r.state, r.attempts, r.last_status) for r in rows(sync_app)} == {("failed", 3, 503)}
    assert sync.run_once() == 0
    assert len(ehr.bundles) == 3


def test_ehr_down_while_reading_capabilities(sync_app: Flask, mock: responses.RequestsMock,
                                             clock: FakeClock) -> None:
    """Nothing was sent: no attempt and no claim counts (the creates stay plain, not
    conditional, when the EHR is back), and the rows wait longer each round it stays down."""
    mock.get(f"{BASE}/metadata", body=requests.ConnectionError("Connection refused"))
    submit(sync_app, "phq-9")
    sync = worker(sync_app, clock)
    waits = []
    for _ in range(3):
        assert sync.run_once() == 4
        found = rows(sync_app)
        assert {(r.state, r.attempts, r.claims, r.last_status) for r in found} == {
            ("pending", 0, 0, 0)}
        waits.append(found[0].next_attempt_at - clock.now)
        clock.advance(waits[-1])
    assert 0 < waits[0] < waits[1] < waits[2]


@pytest.mark.parametrize("reply", [
    (200, {"Content-Type": "text/html"}, "<html>gateway error</html>"),
    _json(200, {"resourceType": "Bundle", "type": "transaction-response", "entry": []}),
])
def test_malformed_transaction_response_retries(sync_app: Flask, ehr: FakeEhr, clock: FakeClock,
                                                reply: Reply) -> None:
    ehr.transaction_reply = lambda _b: reply
    submit(sync_app, "phq-9")
    worker(sync_app, clock).run_once()
    assert {(r.state, r.attempts, r.last_status) for r in rows(sync_app)} == {("pending", 1, 200)}
    assert links(sync_app) == {}


# Rejections: replay one by one, park only the offender ------------------------------------------
def _reject_panel(method: str, path: str, body: Resource) -> Reply | None:
    if body.get("hasMember"):  # the panel Observation; nothing refers to it
        return _json(422, outcome("processing", "Observation for Jane Roe, MRN 4711: bad panel"))
    return None


def test_rejected_transaction_is_replayed_entry_by_entry(sync_app: Flask, ehr: FakeEhr,
                                                         clock: FakeClock) -> None:
    ehr.transaction_reply = lambda _b: _json(400, outcome("invalid", "entry 2 for Jane Roe"))
    ehr.write_reply = _reject_panel
    submit(sync_app, "phq-9")

    worker(sync_app, clock).run_once()

    assert len(ehr.bundles) == 1
    assert [(m, p) for m, p, _h, _b in ehr.writes] == [("POST", "QuestionnaireResponse")] + [
        ("POST", "Observation")] * 3
    for _m, _p, headers, body in ehr.writes:
        assert headers["If-None-Exist"].startswith("identifier=")
        assert all(ref["reference"].startswith("QuestionnaireResponse/ehr-")
                   for ref in body.get("derivedFrom", []))
    states = {(r.resource_type, r.state, r.last_status) for r in rows(sync_app)}
    assert states == {("QuestionnaireResponse", "sent", None), ("Observation", "sent", None),
                      ("Observation", "failed", 422)}
    [failed] = rows(sync_app, "failed")
    assert failed.attempts == 1
    assert "Jane Roe" not in failed.last_error
    clock.advance(3600)
    assert worker(sync_app, clock).run_once() == 0  # not retried


def _sync_plan_then_update(app: Flask, ehr: FakeEhr, clock: FakeClock) -> None:
    submit(app, "crisis-contact-plan", "complete")
    worker(app, clock).run_once()
    assert {r.state for r in rows(app)} == {"sent"}
    submit(app, "crisis-contact-plan", "updated")
    ehr.bundles.clear()


def test_412_on_update_is_parked_as_conflict(sync_app: Flask, ehr: FakeEhr,
                                             clock: FakeClock) -> None:
    _sync_plan_then_update(sync_app, ehr, clock)
    ehr.transaction_reply = lambda _b: _json(412, outcome("conflict", "changed by Dr. Who"))
    ehr.write_reply = lambda method, path, _body: (
        _json(412, outcome("conflict", "version 2 is current"))
        if method == "PUT" and path.startswith("CarePlan/") else None)

    worker(sync_app, clock).run_once()

    [bundle] = ehr.bundles
    plan_entry = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")
    assert plan_entry["request"]["method"] == "PUT"
    assert plan_entry["request"]["ifMatch"] == 'W/"1"'
    put = next(w for w in ehr.writes if w[0] == "PUT" and w[1].startswith("CarePlan/"))
    assert put[2]["If-Match"] == 'W/"1"'
    [conflict] = rows(sync_app, "conflict")
    assert (conflict.resource_type, conflict.last_status, conflict.attempts) == ("CarePlan", 412, 1)
    assert {r.state for r in rows(sync_app) if r.id != conflict.id} == {"sent"}
    writes = len(ehr.writes)
    clock.advance(86400)
    assert worker(sync_app, clock).run_once() == 0
    assert len(ehr.writes) == writes  # never overwritten


def test_sync_retry_requeues_parked_rows(sync_app: Flask, ehr: FakeEhr, clock: FakeClock,
                                         db_url: str) -> None:
    ehr.transaction_reply = lambda _b: _json(400, outcome("invalid", "x"))
    ehr.write_reply = _reject_panel
    submit(sync_app, "phq-9")
    worker(sync_app, clock).run_once()
    assert len(rows(sync_app, "failed")) == 1

    result = CliRunner().invoke(main, ["sync", "retry"], env={"MIT_FHIR_DATABASE_URL": db_url})

    assert result.exit_code == 0, result.output
    assert "re-queued 1 item(s)" in result.output
    [requeued] = [r for r in rows(sync_app) if r.resource_type == "Observation"
                  and r.state == "pending"]
    assert (requeued.attempts, requeued.lease_until) == (0, None)
    ehr.transaction_reply = ehr.accept_transaction
    ehr.write_reply = lambda *_: None
    clock.advance(1)
    assert worker(sync_app, clock).run_once() == 1
    assert {r.state for r in rows(sync_app)} == {"sent"}


def test_sync_retry_by_id_leaves_others_parked(sync_app: Flask, ehr: FakeEhr, clock: FakeClock,
                                               db_url: str) -> None:
    ehr.transaction_reply = lambda _b: (503, {}, "")
    submit(sync_app, "phq-9")
    sync = worker(sync_app, clock, max_attempts=1)
    sync.run_once()
    failed = rows(sync_app, "failed")
    assert len(failed) == 4

    result = CliRunner().invoke(main, ["sync", "retry", str(failed[0].id)],
                                env={"MIT_FHIR_DATABASE_URL": db_url})

    assert "re-queued 1 item(s)" in result.output
    assert [r.id for r in rows(sync_app, "pending")] == [failed[0].id]


# What operators see -----------------------------------------------------------------------------
def test_sync_status_shows_problems_without_patient_data(sync_app: Flask, ehr: FakeEhr,
                                                         clock: FakeClock) -> None:
    ehr.transaction_reply = lambda _b: _json(400, outcome("invalid", "Jane Roe"))
    ehr.write_reply = _reject_panel
    submit(sync_app, "phq-9")
    worker(sync_app, clock).run_once()
    submit(sync_app, "gad-7")  # queued, not yet sent

    resp = sync_app.test_client().get("/sync/status")

    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["enabled"] is True
    assert doc["counts"]["sent"] == 3
    assert doc["counts"]["failed"] == 1
    assert doc["counts"]["pending"] == len(rows(sync_app, "pending")) >= 1
    assert 0 <= doc["oldest_pending_age_seconds"] < 60
    [problem] = doc["problems"]
    assert problem["state"] == "failed"
    assert problem["http_status"] == 422
    assert problem["resource"].startswith("Observation/")
    assert problem["error"]["issues"] == [{"severity": "error", "code": "processing"}]
    text = resp.get_data(as_text=True)
    for secret in ("Jane Roe", "4711", "bad panel", "Patient/", "LA6570-1", "diagnostics"):
        assert secret not in text

    cli = CliRunner().invoke(main, ["sync", "status"],
                             env={"MIT_FHIR_DATABASE_URL": str(sync_app.config["DATABASE_URL"])})
    assert cli.exit_code == 0
    assert json.loads(cli.output)["counts"]["failed"] == 1
    assert "Jane Roe" not in cli.output


# An EHR without conditional create: search, filter, then create or update with If-Match ---------
def test_without_conditional_create_the_worker_searches_itself(
    sync_app: Flask, mock: responses.RequestsMock, clock: FakeClock
) -> None:
    ehr = FakeEhr(mock, capability_statement(conditional=False))
    qr = submit(sync_app, "phq-9")
    submit(sync_app, "crisis-contact-plan", "complete")
    redeliver(sync_app, clock)
    with sync_app.extensions["mit_fhir"].store.transaction() as conn:
        local = [repository.read(conn, r.resource_type, r.resource_id)
                 for r in conn.execute(select(outbox))]
    total = next(r for r in local if r
                 and r["resourceType"] == "Observation" and ":phq-9-total" in identifier_value(r))
    plan = next(r for r in local if r and r["resourceType"] == "CarePlan")
    assert total is not None and plan is not None
    # The EHR ignores the identifier filter: it returns other resources too, which must not
    # be taken for ours; one Observation and the CarePlan it does hold already.
    ehr.search_results = {
        "QuestionnaireResponse": [{"resourceType": "QuestionnaireResponse", "id": "other",
                                   "identifier": {"system": QR_IDENTIFIER_SYSTEM,
                                                  "value": "someone-else"}}],
        "Observation": [
            {"resourceType": "Observation", "id": "unrelated",
             "identifier": [{"system": "urn:other", "value": identifier_value(total)}]},
            {"resourceType": "Observation", "id": "obs-77", "meta": {"versionId": "3"},
             "identifier": [{"system": OBS_SYSTEM, "value": identifier_value(total)}]}],
        "CarePlan": [{"resourceType": "CarePlan", "id": "plan-9", "meta": {"versionId": "5"},
                      "identifier": [{"system": plan["identifier"][0]["system"],
                                      "value": identifier_value(plan)}]}],
    }

    worker(sync_app, clock).run_once()

    searched = {rtype for rtype, _url in ehr.searches}
    assert searched == {"QuestionnaireResponse", "Observation", "CareTeam", "CarePlan"}
    assert all("identifier=" in url and "_count=100" in url for _t, url in ehr.searches)
    entries = [e for b in ehr.bundles for e in b["entry"]]
    assert all("ifNoneExist" not in e["request"] for e in entries)
    posted = [e["resource"] for e in entries if e["request"]["method"] == "POST"]
    assert total["code"] not in [r.get("code") for r in posted]  # already there: not sent
    assert sum(r["resourceType"] == "QuestionnaireResponse" for r in posted) == 2
    panel = next(r for r in posted if r.get("hasMember"))
    assert {"reference": "Observation/obs-77"} in panel["hasMember"]
    [put] = [e for e in entries if e["request"]["method"] == "PUT"]
    assert put["request"] == {"method": "PUT", "url": "CarePlan/plan-9", "ifMatch": 'W/"5"'}
    assert put["resource"]["id"] == "plan-9"
    assert links(sync_app)[("Observation", total["id"])].remote_id == "obs-77"
    assert {r.state for r in rows(sync_app)} == {"sent"}
    assert qr["id"] in {k[1] for k in links(sync_app)}


def test_identifier_found_twice_is_a_conflict(sync_app: Flask, mock: responses.RequestsMock,
                                              clock: FakeClock) -> None:
    ehr = FakeEhr(mock, capability_statement(conditional=False))
    qr = submit(sync_app, "phq-9")
    twin = {"resourceType": "QuestionnaireResponse",
            "identifier": {"system": QR_IDENTIFIER_SYSTEM, "value": qr["id"]}}
    ehr.search_results = {"QuestionnaireResponse": [{**twin, "id": "a"}, {**twin, "id": "b"}]}
    redeliver(sync_app, clock)
    worker(sync_app, clock).run_once()
    [conflict] = rows(sync_app, "conflict")
    assert conflict.resource_type == "QuestionnaireResponse"


def test_without_transaction_support_writes_one_by_one(sync_app: Flask,
                                                       mock: responses.RequestsMock,
                                                       clock: FakeClock) -> None:
    ehr = FakeEhr(mock, capability_statement(transaction=False))
    submit(sync_app, "phq-9")
    worker(sync_app, clock).run_once()
    assert ehr.bundles == []
    assert len(ehr.writes) == 4
    assert all("If-None-Exist" not in h for _m, _p, h, _b in ehr.writes)  # first delivery
    assert {r.state for r in rows(sync_app)} == {"sent"}
    submit(sync_app, "gad-7")
    redeliver(sync_app, clock)
    worker(sync_app, clock).run_once()
    assert all(h["If-None-Exist"].startswith("identifier=") for _m, _p, h, _b in ehr.writes[4:])


def test_malformed_single_write_response_retries(sync_app: Flask, mock: responses.RequestsMock,
                                                 clock: FakeClock) -> None:
    ehr = FakeEhr(mock, capability_statement(transaction=False))
    ehr.write_reply = lambda method, path, body: (
        (201, {"Content-Type": FHIR_JSON}, "<html>proxy</html>")
        if body.get("hasMember") else None)
    submit(sync_app, "phq-9")

    worker(sync_app, clock).run_once()

    states = sorted((r.state, r.attempts, r.lease_until) for r in rows(sync_app))
    assert states == [("pending", 1, None)] + [("sent", 0, None)] * 3


# Settling: each row on its own terms, however mixed the round ------------------------------------
def _phq9_response_down_panels_rejected(method: str, path: str, body: Resource) -> Reply | None:
    if path == "QuestionnaireResponse" and "/phq-9|" in body["questionnaire"]:
        return 503, {}, ""
    return _reject_panel(method, path, body)


def _row_kinds(app: Flask, phq_id: str) -> dict[int, str]:
    """Outbox row id -> phq-qr | phq-obs | gad-qr | gad-panel | gad-obs."""
    kinds = {}
    with app.extensions["mit_fhir"].store.transaction() as conn:
        for row in rows(app):
            res = repository.read(conn, row.resource_type, row.resource_id)
            assert res is not None
            if row.resource_type == "QuestionnaireResponse":
                kinds[row.id] = "phq-qr" if res["id"] == phq_id else "gad-qr"
            elif res["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{phq_id}"}]:
                kinds[row.id] = "phq-obs"
            else:
                kinds[row.id] = "gad-panel" if res.get("hasMember") else "gad-obs"
    return kinds


def test_a_partly_failed_round_settles_each_row_on_its_own_terms(
    sync_app: Flask, ehr: FakeEhr, clock: FakeClock
) -> None:
    phq = submit(sync_app, "phq-9")
    submit(sync_app, "gad-7")
    ehr.transaction_reply = lambda _b: (503, {}, "")
    worker(sync_app, clock).run_once()
    assert {(r.state, r.attempts, r.last_status) for r in rows(sync_app)} == {("pending", 1, 503)}
    clock.advance(3600)
    # The Bundle is rejected, so the entries are replayed one by one: phq-9's response meets a
    # 503 (its scores then wait for it), gad-7's panel a 422, everything else goes through.
    ehr.transaction_reply = lambda _b: _json(400, outcome("invalid", "x"))
    ehr.write_reply = _phq9_response_down_panels_rejected

    worker(sync_app, clock).run_once()

    kinds = _row_kinds(sync_app, phq["id"])
    got = {(kinds[r.id], r.state, r.attempts, r.last_status, r.lease_until,
            round(r.next_attempt_at - clock.now, 6) if r.state == "pending" else None)
           for r in rows(sync_app)}
    assert got == {
        ("phq-qr", "pending", 2, 503, None, 1.5),  # backoff: 3/4 of 1 s * 2**1
        ("phq-obs", "pending", 1, 503, None, 2.0),  # waiting: the attempt is not counted
        ("gad-qr", "sent", 1, None, None, None),
        ("gad-obs", "sent", 1, None, None, None),
        ("gad-panel", "failed", 2, 422, None, None),
    }
    waiting = [r for r in rows(sync_app) if kinds[r.id] == "phq-obs"]
    assert len(waiting) == 3
    assert all(json.loads(r.last_error)["status"] == 503 for r in waiting)  # kept from round 1
    sent = {(r.resource_type, r.resource_id) for r in rows(sync_app, "sent")}
    assert set(links(sync_app)) == sent

    clock.advance(3600)
    ehr.transaction_reply = ehr.accept_transaction
    ehr.write_reply = lambda *_: None
    assert worker(sync_app, clock).run_once() == 4
    assert sorted(r.state for r in rows(sync_app)) == ["failed"] + ["sent"] * 7
    assert len(links(sync_app)) == 7


def test_a_bundle_holds_at_most_the_updates_allowed(sync_app: Flask, ehr: FakeEhr,
                                                   clock: FakeClock) -> None:
    _sync_plan_then_update(sync_app, ehr, clock)
    first_links = links(sync_app)

    worker(sync_app, clock, bundle_max_updates=1).run_once()

    methods = [[e["request"]["method"] for e in b["entry"]] for b in ehr.bundles]
    assert len(methods) == 2  # the new response and one update, then the other update
    assert sorted(m.count("PUT") for m in methods) == [1, 1]  # CarePlan, CareTeam
    assert {r.state for r in rows(sync_app)} == {"sent"}
    # Updates overwrite the links they had (one row per resource), new resources add theirs.
    now_links = links(sync_app)
    plan_key = next(k for k in first_links if k[0] == "CarePlan")
    assert (first_links[plan_key].synced_version, now_links[plan_key].synced_version) == (1, 2)
    assert now_links[plan_key].remote_version == "2"
    assert now_links[plan_key].remote_id == first_links[plan_key].remote_id
    assert len(now_links) == len({(r.resource_type, r.resource_id) for r in rows(sync_app)})


def test_a_bundle_holds_at_most_the_bytes_allowed(sync_app: Flask, ehr: FakeEhr,
                                                  clock: FakeClock) -> None:
    submit(sync_app, "scl-90-r")  # its response alone is about 15 KB
    submit(sync_app, "phq-9")

    worker(sync_app, clock, bundle_max_bytes=8192).run_once()

    sizes = [[len(json.dumps(e["resource"], separators=(",", ":"))) for e in b["entry"]]
             for b in ehr.bundles]
    assert sum(map(len, sizes)) == 18 and len(sizes) >= 3
    assert all(len(s) == 1 or sum(s) <= 8192 for s in sizes)
    assert any(len(s) == 1 and s[0] > 8192 for s in sizes)  # too big for any Bundle: alone
    assert {r.state for r in rows(sync_app)} == {"sent"}
    # Scores sent after their response's Bundle refer to it by its id in the EHR.
    later_refs = [ref["reference"] for b in ehr.bundles[1:] for e in b["entry"]
                  for ref in e["resource"].get("derivedFrom", [])]
    assert any(ref.startswith("QuestionnaireResponse/ehr-") for ref in later_refs)


def test_links_are_upserted_once_per_resource(sync_app: Flask) -> None:
    item = OutboxItem(1, "Observation", "o-1", 1, 0)
    store = sync_app.extensions["mit_fhir"].store
    with store.transaction() as conn:
        save_links(conn, [(item, Link("ehr-1", "1", 1)), (item, Link("ehr-1", "2", 2))], 10.0)
    with store.transaction() as conn:
        save_links(conn, [(item, Link("ehr-1", "3", 3))], 20.0)
    [(key, link)] = links(sync_app).items()
    assert key == ("Observation", "o-1")
    assert (link.remote_id, link.remote_version, link.synced_version, link.synced_at) == (
        "ehr-1", "3", 3, 20.0)


# A client's identifier is unique per patient only: the EHR is asked within the patient ------------
CLIENT_IDENT = {"system": "urn:example:tablet-app", "value": "fill-0001"}


def submit_with_client_identifier(app: Flask, patient: str) -> Resource:
    qr = {**sample("phq-9"), "subject": {"reference": f"Patient/{patient}"},
          "identifier": CLIENT_IDENT}
    resp = app.test_client().post("/fhir/QuestionnaireResponse", content_type=FHIR_JSON,
                                  data=json.dumps(qr))
    assert resp.status_code == 201, resp.get_json()
    body: Resource = resp.get_json()
    return body


def test_a_conditional_create_of_a_client_identifier_names_the_patient(
        sync_app: Flask, ehr: FakeEhr, clock: FakeClock) -> None:
    submit_with_client_identifier(sync_app, "pat-b")
    redeliver(sync_app, clock)
    worker(sync_app, clock).run_once()
    [bundle] = ehr.bundles
    conditions = {e["resource"]["resourceType"]: e["request"]["ifNoneExist"]
                  for e in bundle["entry"]}
    assert conditions["QuestionnaireResponse"] == (
        "identifier=urn:example:tablet-app%7Cfill-0001&patient=Patient/pat-b")
    # The service's own identifiers are UUIDs: they need no patient.
    assert "patient=" not in conditions["Observation"]


def test_another_patients_resource_under_the_identifier_is_not_taken_for_ours(
        sync_app: Flask, mock: responses.RequestsMock, clock: FakeClock) -> None:
    ehr = FakeEhr(mock, capability_statement(conditional=False))
    qr = submit_with_client_identifier(sync_app, "pat-b")
    # An EHR ignoring the patient filter returns patient A's response with this identifier.
    ehr.search_results = {"QuestionnaireResponse": [{
        "resourceType": "QuestionnaireResponse", "id": "theirs", "identifier": CLIENT_IDENT,
        "subject": {"reference": "http://ehr.test/fhir/Patient/pat-a"}}]}
    redeliver(sync_app, clock)
    worker(sync_app, clock).run_once()
    [(_, url)] = [s for s in ehr.searches if s[0] == "QuestionnaireResponse"]
    assert "patient=Patient%2Fpat-b" in url
    posted = [e["resource"] for b in ehr.bundles for e in b["entry"]
              if e["request"]["method"] == "POST"]
    assert [r["subject"] for r in posted if r["resourceType"] == "QuestionnaireResponse"] == [
        {"reference": "Patient/pat-b"}]
    assert links(sync_app)[("QuestionnaireResponse", qr["id"])].remote_id != "theirs"
