"""Characterisation of the two real FHIR R4 test servers (see tests/servers/README.md).

Every test runs against both servers through the `fhir_server` fixture. Where a server falls short
of the FHIR REST specification, the test says what the specification wants and is marked
xfail(strict=True) for that server, so a server upgrade that closes the gap shows up as XPASS.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.servers import fixtures
from tests.servers.fixtures import FhirTestServer, MedplumServer, SekmetServer

# The server fixtures, made visible to pytest in this module.
medplum_server = fixtures.medplum_server
sekmet_server = fixtures.sekmet_server
fhir_server = fixtures.fhir_server

FHIR_JSON = "application/fhir+json"
SYSTEM = "urn:oid:2.999.1.1"  # identifier system used by these tests only
WEAK_ETAG = re.compile(r'^W/"([^"]+)"$')
TIMEOUT = 10


class Fhir:
    """Just enough of a FHIR REST client for these tests."""

    def __init__(self, server: FhirTestServer) -> None:
        self.server = server
        self.base = server.base_url
        self.http = requests.Session()
        self.http.headers.update({"Accept": FHIR_JSON, "Content-Type": FHIR_JSON})

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}" if path else f"{self.base}/"

    def get(self, path: str, **params: str) -> requests.Response:
        return self.http.get(self.url(path), params=params or None, timeout=TIMEOUT)

    def post(self, path: str, body: dict[str, Any], **headers: str) -> requests.Response:
        return self.http.post(self.url(path), json=body, headers=headers, timeout=TIMEOUT)

    def put(self, path: str, body: dict[str, Any], **headers: str) -> requests.Response:
        return self.http.put(self.url(path), json=body, headers=headers, timeout=TIMEOUT)

    def search(self, resource_type: str, **params: str) -> list[dict[str, Any]]:
        resp = self.get(resource_type, **params)
        assert resp.status_code == 200, resp.text
        bundle = resp.json()
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
        return [
            e["resource"]
            for e in bundle.get("entry", [])
            if e.get("search", {}).get("mode", "match") == "match"
        ]


@pytest.fixture
def rest(fhir_server: FhirTestServer) -> Fhir:
    return Fhir(fhir_server)


def xfail_on(request: pytest.FixtureRequest, rest: Fhir, name: str, reason: str) -> None:
    """Mark the running test xfail(strict) when it runs against the server called `name`."""
    if rest.server.name == name:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def token() -> str:
    return uuid.uuid4().hex


def ident(value: str) -> str:
    return f"{SYSTEM}|{value}"


def patient(value: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": value}],
        "name": [{"family": "Test", "given": ["Sync"]}],
    }


def observation(value: str, subject: str | None = None, score: float = 3) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": SYSTEM, "value": value}],
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "44249-1"}], "text": "PHQ-9"},
        "valueQuantity": {
            "value": score,
            "unit": "{score}",
            "system": "http://unitsofmeasure.org",
            "code": "{score}",
        },
    }
    if subject:
        obs["subject"] = {"reference": subject}
    return obs


def version_of(resp: requests.Response) -> str:
    """The version id from a weak ETag, checked against meta.versionId when a body came back."""
    etag = resp.headers.get("ETag", "")
    match = WEAK_ETAG.match(etag)
    assert match, f'ETag {etag!r} is not W/"<versionId>"'
    if resp.content:
        assert resp.json()["meta"]["versionId"] == match.group(1)
    return match.group(1)


def create(rest: Fhir, resource: dict[str, Any]) -> dict[str, Any]:
    resp = rest.post(resource["resourceType"], resource)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


# ---------------------------------------------------------------------- capability


def test_metadata_is_an_r4_capability_statement(rest: Fhir) -> None:
    resp = rest.get("metadata")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith(FHIR_JSON)
    cs = resp.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"].startswith("4.0.")
    types = {r["type"] for part in cs["rest"] for r in part.get("resource", [])}
    assert {"Observation", "MedicationRequest", "CarePlan", "Patient"} <= types


def test_metadata_lists_every_type_the_sync_writes(
    rest: Fhir, request: pytest.FixtureRequest
) -> None:
    xfail_on(
        request,
        rest,
        "sekmet",
        "SEKMET's CapabilityStatement leaves out CareTeam and QuestionnaireResponse "
        "(it stores them all the same)",
    )
    cs = rest.get("metadata").json()
    types = {r["type"] for part in cs["rest"] for r in part.get("resource", [])}
    assert {"QuestionnaireResponse", "CareTeam"} <= types


# ---------------------------------------------------------------------- CRUD and versions


def test_create_read_update_observation(rest: Fhir) -> None:
    key = token()
    resp = rest.post("Observation", observation(key))
    assert resp.status_code == 201, resp.text
    assert resp.headers["Content-Type"].startswith(FHIR_JSON)
    created = resp.json()
    rid, v1 = created["id"], version_of(resp)
    location = resp.headers["Location"]
    assert location.startswith(f"{rest.base}/Observation/{rid}")  # both add /_history/<vid>

    read = rest.get(f"Observation/{rid}")
    assert read.status_code == 200
    assert version_of(read) == v1
    assert read.json()["valueQuantity"]["value"] == 3

    changed = {**read.json(), "valueQuantity": {**read.json()["valueQuantity"], "value": 7}}
    upd = rest.put(f"Observation/{rid}", changed, **{"If-Match": f'W/"{v1}"'})
    assert upd.status_code == 200, upd.text
    v2 = version_of(upd)
    assert v2 != v1
    again = rest.get(f"Observation/{rid}")
    assert again.json()["valueQuantity"]["value"] == 7
    assert version_of(again) == v2
    old = rest.get(f"Observation/{rid}/_history/{v1}")
    assert old.status_code == 200 and old.json()["valueQuantity"]["value"] == 3


def test_update_as_create_gives_201(rest: Fhir) -> None:
    rid = f"mit-{token()[:20]}"
    resp = rest.put(f"Observation/{rid}", {**observation(token()), "id": rid})
    assert resp.status_code == 201, resp.text
    assert resp.headers["Location"].startswith(f"{rest.base}/Observation/{rid}")
    assert rest.get(f"Observation/{rid}").status_code == 200


def test_invalid_resource_is_rejected(rest: Fhir) -> None:
    """Observation.code is 1..1: both validate structure on write (Medplum through server.mjs)."""
    bad = observation(token())
    del bad["code"]
    resp = rest.post("Observation", bad)
    assert resp.status_code == 400
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_put_with_stale_if_match_gives_412(rest: Fhir) -> None:
    created = create(rest, observation(token()))
    rid, v1 = created["id"], created["meta"]["versionId"]
    assert rest.put(f"Observation/{rid}", {**created, "status": "amended"}).status_code == 200
    stale = rest.put(
        f"Observation/{rid}", {**created, "status": "corrected"}, **{"If-Match": f'W/"{v1}"'}
    )
    assert stale.status_code == 412, stale.text
    assert rest.get(f"Observation/{rid}").json()["status"] == "amended"


# ---------------------------------------------------------------------- conditional interactions


def test_conditional_create_does_not_duplicate(rest: Fhir) -> None:
    key = token()
    condition = {"If-None-Exist": f"identifier={ident(key)}"}
    first = rest.post("Observation", observation(key), **condition)
    assert first.status_code == 201, first.text
    second = rest.post("Observation", observation(key, score=9), **condition)
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["valueQuantity"]["value"] == 3  # the stored one, not the new body
    assert len(rest.search("Observation", identifier=ident(key))) == 1


def test_conditional_update_creates_then_updates(rest: Fhir) -> None:
    key = token()
    first = rest.put(f"Observation?identifier={ident(key)}", observation(key))
    assert first.status_code == 201, first.text
    second = rest.put(f"Observation?identifier={ident(key)}", observation(key, score=5))
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert version_of(second) != version_of(first)
    found = rest.search("Observation", identifier=ident(key))
    assert [o["valueQuantity"]["value"] for o in found] == [5]


def test_conditional_update_with_stale_if_match_gives_412(
    rest: Fhir, request: pytest.FixtureRequest
) -> None:
    xfail_on(
        request, rest, "sekmet", "SEKMET ignores If-Match on conditional PUT [base]/Type?query"
    )
    key = token()
    created = create(rest, observation(key))
    v1 = created["meta"]["versionId"]
    assert (
        rest.put(f"Observation/{created['id']}", {**created, "status": "amended"}).status_code
        == 200
    )
    stale = rest.put(
        f"Observation?identifier={ident(key)}",
        observation(key, score=8),
        **{"If-Match": f'W/"{v1}"'},
    )
    assert stale.status_code == 412, stale.text


def test_conditional_create_on_questionnaire_response(
    rest: Fhir, request: pytest.FixtureRequest
) -> None:
    xfail_on(
        request,
        rest,
        "sekmet",
        "SEKMET has no QuestionnaireResponse search parameters: "
        "If-None-Exist identifier=... gives 400",
    )
    key = token()
    qr = {
        "resourceType": "QuestionnaireResponse",
        "identifier": {"system": SYSTEM, "value": key},
        "questionnaire": "http://example.org/Questionnaire/phq-9",
        "status": "completed",
    }
    first = rest.post("QuestionnaireResponse", qr, **{"If-None-Exist": f"identifier={ident(key)}"})
    assert first.status_code == 201, first.text
    second = rest.post("QuestionnaireResponse", qr, **{"If-None-Exist": f"identifier={ident(key)}"})
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]


# ---------------------------------------------------------------------- transactions


def transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def test_transaction_with_two_entries_creates_both(rest: Fhir) -> None:
    key = token()
    patient_urn = f"urn:uuid:{uuid.uuid4()}"
    bundle = transaction(
        {
            "fullUrl": patient_urn,
            "resource": patient(key),
            "request": {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": f"identifier={ident(key)}",
            },
        },
        {
            "resource": observation(key, subject=patient_urn),
            "request": {"method": "PUT", "url": f"Observation?identifier={ident(key)}"},
        },
    )
    resp = rest.post("", bundle)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["type"] == "transaction-response"
    assert [e["response"]["status"].split()[0] for e in out["entry"]] == ["201", "201"]
    locations = [e["response"]["location"] for e in out["entry"]]
    assert (
        locations[0].split("/_history")[0].endswith("Patient/" + out["entry"][0]["resource"]["id"])
    )

    for entry in out["entry"]:  # version of each written resource, as a weak ETag
        assert entry["response"]["etag"] == f'W/"{entry["resource"]["meta"]["versionId"]}"'

    (pat,) = rest.search("Patient", identifier=ident(key))
    (obs,) = rest.search("Observation", identifier=ident(key))
    assert obs["subject"]["reference"] == f"Patient/{pat['id']}"  # urn:uuid rewritten


def test_failed_transaction_rolls_back(rest: Fhir, request: pytest.FixtureRequest) -> None:
    xfail_on(
        request,
        rest,
        "medplum",
        "MemoryRepository has no rollback: entries before the failing one stay written",
    )
    key = token()
    broken = observation(token())
    del broken["code"]
    resp = rest.post(
        "",
        transaction(
            {"resource": observation(key), "request": {"method": "POST", "url": "Observation"}},
            {"resource": broken, "request": {"method": "POST", "url": "Observation"}},
        ),
    )
    assert resp.status_code == 400, resp.text
    assert rest.search("Observation", identifier=ident(key)) == []


def test_transaction_with_nine_conditional_entries(
    rest: Fhir, request: pytest.FixtureRequest
) -> None:
    xfail_on(
        request,
        rest,
        "medplum",
        "Medplum refuses transactions with conditional entries above 8 entries (400)",
    )
    keys = [token() for _ in range(9)]
    entries = [
        {
            "resource": observation(k),
            "request": {
                "method": "POST",
                "url": "Observation",
                "ifNoneExist": f"identifier={ident(k)}",
            },
        }
        for k in keys
    ]
    resp = rest.post("", transaction(*entries))
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["entry"]) == 9


# ---------------------------------------------------------------------- search


def test_search_observation_by_identifier(rest: Fhir) -> None:
    key, other = token(), token()
    mine = create(rest, observation(key))
    create(rest, observation(other))
    found = rest.search("Observation", identifier=ident(key))
    assert [o["id"] for o in found] == [mine["id"]]
    assert rest.search("Observation", identifier=ident(token())) == []


def test_search_observation_by_patient(rest: Fhir) -> None:
    pat = create(rest, patient(token()))
    other = create(rest, patient(token()))
    mine = create(rest, observation(token(), subject=f"Patient/{pat['id']}"))
    create(rest, observation(token(), subject=f"Patient/{other['id']}"))
    for params in ({"patient": f"Patient/{pat['id']}"}, {"subject": f"Patient/{pat['id']}"}):
        assert [o["id"] for o in rest.search("Observation", **params)] == [mine["id"]], params


def test_search_pages_through_next_links(rest: Fhir) -> None:
    pat = create(rest, patient(token()))
    made = {
        create(rest, observation(token(), subject=f"Patient/{pat['id']}"))["id"] for _ in range(5)
    }
    seen: list[str] = []
    url: str | None = f"{rest.base}/Observation?patient=Patient/{pat['id']}&_count=2"
    pages = 0
    while url and pages < 10:
        bundle = rest.http.get(url, timeout=TIMEOUT).json()
        assert len(bundle.get("entry", [])) <= 2
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
        url = next(
            (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
        )
        pages += 1
    assert pages == 3
    assert sorted(seen) == sorted(made)


def test_search_questionnaire_response_by_identifier(
    rest: Fhir, request: pytest.FixtureRequest
) -> None:
    xfail_on(
        request,
        rest,
        "sekmet",
        "SEKMET has no QuestionnaireResponse search parameters: "
        "the filter is ignored and every QuestionnaireResponse comes back",
    )
    key = token()
    for k in (key, token()):
        create(
            rest,
            {
                "resourceType": "QuestionnaireResponse",
                "status": "completed",
                "identifier": {"system": SYSTEM, "value": k},
            },
        )
    found = rest.search("QuestionnaireResponse", identifier=ident(key))
    assert [qr["identifier"]["value"] for qr in found] == [key]


def test_unknown_search_parameter_is_not_silently_empty(
    rest: Fhir, request: pytest.FixtureRequest
) -> None:
    """FHIR lets a server ignore an unknown parameter (and say so) or refuse it (400)."""
    xfail_on(
        request,
        rest,
        "medplum",
        "MemoryRepository matches nothing for an unknown search parameter, without a word",
    )
    key = token()
    create(rest, observation(key))
    resp = rest.get("Observation", identifier=ident(key), **{"no-such-param": "x"})
    if resp.status_code == 400:
        return
    assert resp.status_code == 200
    assert len(rest.search("Observation", identifier=ident(key), **{"no-such-param": "x"})) == 1


# ---------------------------------------------------------------------- restart


@pytest.mark.parametrize("cls", [MedplumServer, SekmetServer], ids=["medplum", "sekmet"])
def test_restart_same_port(cls: type[FhirTestServer], tmp_path: Path) -> None:
    """restart() keeps the port; SEKMET keeps its data, Medplum (in memory) starts empty."""
    with cls(workdir=tmp_path) as server:
        rest = Fhir(server)
        created = create(rest, observation(token()))
        port = server.port
        server.restart()
        assert server.port == port and server.running
        read = rest.get(f"Observation/{created['id']}")
        assert read.status_code == (200 if cls.keeps_data_across_restart else 404)
    assert not server.running
