"""Search paging over HTTP: `_count` bounds every search route, `next` links page through all
matches once even while resources are being added, and a cursor resumes only its own search."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient

from mit_fhir.app import create_app
from mit_fhir.fhir import paging
from mit_fhir.fhir.index import observation_index, sort_date
from mit_fhir.store import repository

Resource = dict[str, Any]
SEARCH_ROUTES = ["QuestionnaireResponse", "Observation", "MedicationRequest", "CarePlan",
                 "CareTeam", "AuditEvent", "Provenance"]


def _observation(patient: str, n: int) -> Resource:
    # Days repeat (ties broken by id) and some scores have no date at all.
    effective = None if n % 13 == 0 else f"2026-0{1 + n % 6}-{1 + n % 20:02d}T10:00:00Z"
    obs: Resource = {"resourceType": "Observation", "status": "final",
                     "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                     "subject": {"reference": f"Patient/{patient}"},
                     "valueQuantity": {"value": n % 27}}
    if effective:
        obs["effectiveDateTime"] = effective
    return obs


def add_observations(app: Flask, patient: str, numbers: range) -> list[str]:
    """Scores stored as the service stores them (index rows and sort date), without the
    scoring path: the paging tests need hundreds."""
    store = app.extensions["mit_fhir"].store
    ids = []
    with store.transaction() as conn:
        for n in numbers:
            obs = _observation(patient, n)
            obs["id"] = repository.new_id()
            repository.insert(conn, obs, observation_index(obs), sort_date=sort_date(obs))
            ids.append(obs["id"])
    return ids


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _next(bundle: Resource) -> str | None:
    return next((_path(link["url"]) for link in bundle["link"] if link["relation"] == "next"),
                None)


def page_all(client: FlaskClient, first: str,
             between: Callable[[int], None] = lambda page: None) -> list[Resource]:
    """Every entry of a search, following next links (calling `between` after each page)."""
    found: list[Resource] = []
    url: str | None = first
    for page in range(1000):
        if url is None:
            return found
        resp = client.get(url)
        assert resp.status_code == 200, resp.get_json()
        bundle = resp.get_json()
        found += [e["resource"] for e in bundle.get("entry", [])]
        url = _next(bundle)
        if url is not None:
            between(page)
    raise AssertionError("paging never ended")


def test_without_count_a_search_answers_the_default_page(app: Flask, client: FlaskClient) -> None:
    add_observations(app, "p1", range(60))
    bundle = client.get("/fhir/Observation?patient=Patient/p1").get_json()
    assert len(bundle["entry"]) == 50
    assert "total" not in bundle, "a total only where it is free (the page holds every match)"
    assert _next(bundle) is not None


def test_a_search_that_fits_one_page_has_its_total_and_no_next(
    app: Flask, client: FlaskClient
) -> None:
    add_observations(app, "p1", range(12))
    bundle = client.get("/fhir/Observation?patient=Patient/p1&_count=12").get_json()
    assert bundle["total"] == 12 == len(bundle["entry"])
    assert [link["relation"] for link in bundle["link"]] == ["self"]


@pytest.mark.parametrize("route", SEARCH_ROUTES)
def test_no_search_route_answers_more_than_the_maximum(database_url: str, route: str) -> None:
    app = create_app({"DATABASE_URL": database_url, "SEARCH_DEFAULT_COUNT": 3,
                      "SEARCH_MAX_COUNT": 4})
    client = app.test_client()
    add_observations(app, "p1", range(6))
    for _ in range(6):  # AuditEvents
        client.get("/fhir/Observation?_count=1")
    store = app.extensions["mit_fhir"].store
    with store.transaction() as conn:  # the other types: any resources of the type will do
        for n in range(6):
            res: Resource = {"resourceType": route, "id": f"r{n}"}
            if route not in ("Observation", "AuditEvent"):
                repository.insert(conn, res, [("_id", res["id"])])
    default = client.get(f"/fhir/{route}").get_json()
    assert len(default["entry"]) == 3
    assert len(client.get(f"/fhir/{route}?_count=4").get_json()["entry"]) == 4
    assert client.get(f"/fhir/{route}?_count=5").status_code == 400
    assert len(page_all(client, f"/fhir/{route}?_count=4")) >= 6
    app.extensions["mit_fhir"].store.dispose()


@pytest.mark.parametrize("value", ["abc", "0", "-1", "501", "1.5", "", "10&_count=20"])
def test_count_outside_one_to_the_maximum_is_a_400(client: FlaskClient, value: str) -> None:
    resp = client.get(f"/fhir/AuditEvent?_count={value}")
    assert resp.status_code == 400
    outcome = resp.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "_count" in outcome["issue"][0]["diagnostics"]


def test_the_maximum_is_allowed(client: FlaskClient) -> None:
    assert client.get("/fhir/AuditEvent?_count=500").status_code == 200


@pytest.mark.parametrize("sort", ["", "&_sort=date", "&_sort=-date"])
def test_paging_through_120_while_others_are_added_serves_each_once(
    app: Flask, client: FlaskClient, sort: str
) -> None:
    original = add_observations(app, "p1", range(120))
    add_observations(app, "p2", range(5))  # another patient's: never on these pages

    pages: list[int] = []

    def writer(page: int) -> None:  # a clinic submitting while a client pages
        pages.append(page)
        add_observations(app, "p1", range(1000 + 3 * page, 1003 + 3 * page))

    found = page_all(client, f"/fhir/Observation?patient=Patient/p1&_count=25{sort}", writer)
    assert len(pages) >= 4, "120 resources at 25 a page take five pages or more"
    ids = [r["id"] for r in found]
    assert len(ids) == len(set(ids)), "a resource was served twice"
    assert set(original) <= set(ids), "a resource that existed on page 1 was skipped"
    assert {r["subject"]["reference"] for r in found} == {"Patient/p1"}
    if sort:
        dates = [r.get("effectiveDateTime", "") for r in found if r["id"] in set(original)]
        assert dates == sorted(dates, reverse=sort.endswith("-date"))


def _first_next(client: FlaskClient, query: str) -> str:
    bundle = client.get(f"/fhir/Observation?{query}").get_json()
    url = _next(bundle)
    assert url is not None
    return url


def _cursor(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["_cursor"]


@pytest.mark.parametrize("other", [
    "patient=Patient/p2&_count=5",  # another patient
    "patient=Patient/p1&_count=5&_sort=-date",  # another order
    "patient=Patient/p1&status=final&_count=5",  # a narrower search
    "_count=5",  # a wider one
])
def test_a_cursor_replayed_with_other_parameters_is_a_400(
    app: Flask, client: FlaskClient, other: str
) -> None:
    add_observations(app, "p1", range(12))
    add_observations(app, "p2", range(12))
    cursor = _cursor(_first_next(client, "patient=Patient/p1&_count=5&_sort=date"))
    resp = client.get(f"/fhir/Observation?{other}&_cursor={cursor}")
    assert resp.status_code == 400
    assert "another search" in resp.get_json()["issue"][0]["diagnostics"]


def test_a_cursor_may_change_the_page_size(app: Flask, client: FlaskClient) -> None:
    add_observations(app, "p1", range(12))
    cursor = _cursor(_first_next(client, "patient=Patient/p1&_count=5"))
    bundle = client.get(f"/fhir/Observation?patient=Patient/p1&_count=20&_cursor={cursor}")
    assert len(bundle.get_json()["entry"]) == 7


def _altered(cursor: str) -> str:
    payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    payload["i"] = "../../Patient/p2"
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


@pytest.mark.parametrize("forge", [
    lambda c: c[:-3], lambda c: c + "A", lambda c: "x" + c[1:], lambda c: c.replace("e", "%"),
    lambda c: "", lambda c: "a" * 4000, _altered,
])
def test_a_forged_cursor_is_a_400_not_a_500(
    app: Flask, client: FlaskClient, forge: Callable[[str], str]
) -> None:
    add_observations(app, "p1", range(12))
    cursor = _cursor(_first_next(client, "patient=Patient/p1&_count=5"))
    resp = client.get("/fhir/Observation", query_string={"patient": "Patient/p1",
                                                         "_cursor": forge(cursor)})
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["resourceType"] == "OperationOutcome"


def test_an_expired_cursor_is_a_400(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_observations(app, "p1", range(12))
    url = _first_next(client, "patient=Patient/p1&_count=5")
    issued = paging.time.time()
    monkeypatch.setattr(paging.time, "time", lambda: issued + paging.CURSOR_SECONDS + 5)
    resp = client.get(url)
    assert resp.status_code == 400
    assert "expired" in resp.get_json()["issue"][0]["diagnostics"]


def test_the_next_link_is_on_the_configured_base(database_url: str) -> None:
    app = create_app({"DATABASE_URL": database_url, "BASE_URL": "https://ehr.example.org/mit/fhir"})
    add_observations(app, "p1", range(3))
    bundle = app.test_client().get("/fhir/Observation?patient=Patient/p1&_count=2",
                                   base_url="https://ehr.example.org").get_json()
    nxt = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
    assert nxt.startswith("https://ehr.example.org/mit/fhir/Observation?patient=Patient%2Fp1")
    app.extensions["mit_fhir"].store.dispose()


def test_use_cases_read_more_than_an_http_page(database_url: str) -> None:
    """The outcomes timeline (and reliable change) read the patient's whole history through
    the internal query: a page size of 2 bounds the searches, not them."""
    from mit_fhir.usecases.demo import load_demo

    app = create_app({"DATABASE_URL": database_url, "SEARCH_DEFAULT_COUNT": 2,
                      "SEARCH_MAX_COUNT": 2})
    patient = load_demo(app.extensions["mit_fhir"]).patient
    client = app.test_client()
    served = page_all(client, f"/fhir/Observation?patient=Patient/{patient}&_count=2")
    scores = {r["id"] for r in served if "valueQuantity" in r}
    doc = client.get(f"/outcomes/{patient}").get_json()
    points = {p["observation"].split("/")[1] for i in doc["instruments"] for p in i["points"]}
    assert len(points) > 2
    assert points <= scores
    app.extensions["mit_fhir"].store.dispose()
