"""QuestionnaireResponse create, read and search over HTTP."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mit_fhir.app import create_app
from tests.conftest import FHIR_JSON, SAMPLES, FhirActions, sample
from tests.security.issuer import Issuer

FORMS = sorted(p.name for p in SAMPLES.iterdir() if (p / "complete.json").is_file())
QR_PATH = "/fhir/QuestionnaireResponse"
SECRET = "SECRET-ANSWER-123"
YES = {"system": "http://loinc.org", "code": "LA33-6", "display": "Yes"}
NO = {"system": "http://loinc.org", "code": "LA32-8", "display": "No"}


def stored_count(client: FlaskClient) -> int:
    resp = client.get(QR_PATH)
    assert resp.status_code == 200
    total: int = resp.get_json()["total"]
    return total


def assert_outcome(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == FHIR_JSON
    body: dict[str, Any] = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"], "an OperationOutcome needs at least one issue"
    assert all(i["severity"] in ("error", "fatal") for i in body["issue"])
    return body


def diagnostics(body: dict[str, Any]) -> str:
    return " | ".join(i["diagnostics"] for i in body["issue"])


def item(qr: dict[str, Any], link_id: str) -> dict[str, Any]:
    found = [i for i in qr["item"] if i["linkId"] == link_id]
    assert found, link_id
    return found[0]


def test_the_catalogue_has_a_complete_sample_for_every_form() -> None:
    assert len(FORMS) == 16


# --- create and read ---------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_complete_sample_is_accepted_and_reads_back(
    fhir: FhirActions, client: FlaskClient, form: str
) -> None:
    qr = sample(form)
    resp = fhir.submit(qr)
    assert resp.status_code == 201, resp.get_json()
    stored = resp.get_json()
    new_id = stored["id"]
    assert new_id != qr["id"], "the server assigns the id"
    assert stored["meta"]["versionId"] == "1"
    assert resp.headers["Location"] == (
        f"http://localhost/fhir/QuestionnaireResponse/{new_id}/_history/1"
    )
    assert resp.headers["ETag"] == 'W/"1"'

    read = client.get(f"{QR_PATH}/{new_id}")
    assert read.status_code == 200
    assert read.mimetype == FHIR_JSON
    assert read.headers["ETag"] == 'W/"1"'
    body = read.get_json()
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"]
    expected = {k: v for k, v in qr.items() if k not in ("id", "meta")}
    # The server adds its business identifier (R4 allows one) when the client sent none.
    expected.setdefault("identifier", {
        "system": "https://mit-fhir.org/fhir/identifier/questionnaire-response", "value": new_id})
    assert {k: v for k, v in body.items() if k not in ("id", "meta")} == expected
    assert body["id"] == new_id


def test_a_client_identifier_is_kept(fhir: FhirActions) -> None:
    ident = {"system": "urn:oid:1.2.3", "value": "form-42"}
    stored = fhir.submit({**sample("phq-9"), "identifier": ident}).get_json()
    assert stored["identifier"] == ident


def test_each_submission_gets_its_own_id(fhir: FhirActions, client: FlaskClient) -> None:
    first = fhir.submit(sample("phq-9")).get_json()["id"]
    second = fhir.submit(sample("phq-9")).get_json()["id"]
    assert first != second
    assert stored_count(client) == 2


def test_location_uses_the_configured_base_url(database_url: str) -> None:
    app = create_app(
        {
            "DATABASE_URL": database_url,
            "BASE_URL": "https://ehr.example.org/fhir",
        }
    )
    try:
        resp = app.test_client().post("/fhir/QuestionnaireResponse",
                                      data=json.dumps(sample("gad-7")), content_type=FHIR_JSON,
                                      base_url="https://ehr.example.org")
    finally:
        app.extensions["mit_fhir"].store.dispose()
    assert resp.status_code == 201
    assert resp.headers["Location"].startswith(
        "https://ehr.example.org/fhir/QuestionnaireResponse/"
    )


@pytest.mark.parametrize("content_type", ["application/json", f"{FHIR_JSON}; charset=utf-8"])
def test_plain_json_content_types_are_accepted(client: FlaskClient, content_type: str) -> None:
    resp = client.post(QR_PATH, data=json.dumps(sample("gad-7")), content_type=content_type)
    assert resp.status_code == 201


def test_relative_questionnaire_reference_is_accepted(fhir: FhirActions) -> None:
    qr = sample("phq-9")
    qr["questionnaire"] = "Questionnaire/phq-9"
    assert fhir.submit(qr).status_code == 201


def test_in_progress_response_may_leave_required_items_out(fhir: FhirActions) -> None:
    qr = sample("mas-a")
    qr["status"] = "in-progress"
    qr["item"] = qr["item"][:1]
    assert fhir.submit(qr).status_code == 201


def test_cssrs_follow_up_items_may_be_answered_when_enabled(fhir: FhirActions) -> None:
    qr = sample("cssrs-screener")
    assert item(qr, "cssrs-screener-2")["answer"][0]["valueCoding"]["code"] == YES["code"]
    assert fhir.submit(qr).status_code == 201


def test_cssrs_follow_up_items_are_skipped_when_q2_is_no(fhir: FhirActions) -> None:
    qr = sample("cssrs-screener")
    item(qr, "cssrs-screener-2")["answer"] = [{"valueCoding": NO}]
    qr["item"] = [i for i in qr["item"] if i["linkId"] not in {
        "cssrs-screener-3", "cssrs-screener-4", "cssrs-screener-5"}]
    assert fhir.submit(qr).status_code == 201


def test_unknown_response_id_is_a_404(client: FlaskClient) -> None:
    body = assert_outcome(client.get(f"{QR_PATH}/does-not-exist"), 404)
    assert body["issue"][0]["code"] == "not-found"


# --- rejections: an OperationOutcome, and nothing stored --------------------------------------


def _mutate(form: str, change: Any) -> dict[str, Any]:
    qr = sample(form)
    change(qr)
    return qr


def _set_answer(link_id: str, answers: list[dict[str, Any]]) -> Any:
    def change(qr: dict[str, Any]) -> None:
        item(qr, link_id)["answer"] = answers

    return change


def _from_now(minutes: int) -> str:
    """An instant this many minutes from now, written with an offset (as an EHR might)."""
    zone = timezone(timedelta(hours=1))
    return (datetime.now(UTC) + timedelta(minutes=minutes)).astimezone(zone).isoformat(
        timespec="seconds")


def _drop(link_id: str) -> Any:
    def change(qr: dict[str, Any]) -> None:
        qr["item"] = [i for i in qr["item"] if i["linkId"] != link_id]

    return change


def _cssrs_q3_while_q2_no(qr: dict[str, Any]) -> None:
    item(qr, "cssrs-screener-2")["answer"] = [{"valueCoding": NO}]
    item(qr, "cssrs-screener-3")["answer"] = [{"valueCoding": YES}]


def _unknown_link(qr: dict[str, Any]) -> None:
    qr["item"].append({"linkId": "phq-9-99", "answer": [{"valueString": SECRET}]})


def _duplicate_item(qr: dict[str, Any]) -> None:
    qr["item"].append(copy.deepcopy(item(qr, "gad-7-1")))


INVALID: dict[str, tuple[str, Any, int, str]] = {
    "unknown questionnaire": (
        "phq-9",
        lambda qr: qr.update(questionnaire="https://example.org/Questionnaire/nope"),
        422, "no Questionnaire",
    ),
    "unknown questionnaire version": (
        "phq-9",
        lambda qr: qr.update(questionnaire="https://mit-fhir.org/fhir/Questionnaire/phq-9|9.0.0"),
        422, "no Questionnaire",
    ),
    "no questionnaire": ("phq-9", lambda qr: qr.pop("questionnaire"), 422, "questionnaire"),
    "unknown linkId": ("phq-9", _unknown_link, 422, "phq-9-99"),
    "string answer to a decimal item": (
        "mas-a", _set_answer("mas-a-1", [{"valueString": SECRET}]), 422, "mas-a-1",
    ),
    "boolean answer to a choice item": (
        "phq-9", _set_answer("phq-9-1", [{"valueBoolean": True}]), 422, "phq-9-1",
    ),
    "code outside the answerOptions": (
        "phq-9",
        _set_answer("phq-9-1", [{"valueCoding": {"system": "http://loinc.org", "code": SECRET}}]),
        422, "answerOption",
    ),
    "option code from another system": (
        "cssrs-screener",
        _set_answer("cssrs-screener-1",
                    [{"valueCoding": {"system": "http://example.org", "code": "LA33-6"}}]),
        422, "answerOption",
    ),
    "required item missing on a completed response": (
        "mas-a", _drop("mas-a-1"), 422, "mas-a-1",
    ),
    "required item answered with nothing": ("gad-7", _set_answer("gad-7-1", []), 422, "gad-7-1"),
    "answer to an item disabled by enableWhen": (
        "cssrs-screener", _cssrs_q3_while_q2_no, 422, "cssrs-screener-3",
    ),
    "several answers to a non-repeating item": (
        "mas-a", _set_answer("mas-a-1", [{"valueDecimal": 1}, {"valueDecimal": 2}]), 422,
        "mas-a-1",
    ),
    "same non-repeating item twice": ("gad-7", _duplicate_item, 422, "gad-7-1"),
    "decimal above maxValue": ("mas-a", _set_answer("mas-a-1", [{"valueDecimal": 9.5}]), 422,
                               "mas-a-1"),
    "decimal below minValue": ("mas-a", _set_answer("mas-a-1", [{"valueDecimal": -0.5}]), 422,
                               "mas-a-1"),
    "missing subject": ("phq-9", lambda qr: qr.pop("subject"), 422, "subject"),
    "subject that is not a Patient": (
        "phq-9", lambda qr: qr.update(subject={"reference": "Group/1"}), 422, "subject",
    ),
    "unknown status": ("phq-9", lambda qr: qr.update(status="done"), 422, "status"),
    "malformed decimal (structure)": (
        "mas-a", _set_answer("mas-a-1", [{"valueDecimal": SECRET}]), 400, "valueDecimal",
    ),
    "unknown element (structure)": (
        "phq-9", lambda qr: qr.update(secretNote=SECRET), 400, "secretNote",
    ),
    # F2: a future response would be every timeline's latest (and hide its alerts) until then.
    "authored in the future": (
        "phq-9", lambda qr: qr.update(authored="9999-12-31T00:00:00Z"), 422, "later than now",
    ),
    "authored beyond the clock skew": (
        "phq-9", lambda qr: qr.update(authored=_from_now(minutes=6)), 422, "later than now",
    ),
    "malformed authored (structure)": (
        "phq-9", lambda qr: qr.update(authored=SECRET), 400, "authored",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_response_is_rejected_and_not_stored(
    fhir: FhirActions, client: FlaskClient, case: str
) -> None:
    form, change, status, mentioned = INVALID[case]
    resp = fhir.submit(_mutate(form, change))
    body = assert_outcome(resp, status)
    assert mentioned in diagnostics(body)
    assert SECRET not in resp.get_data(as_text=True), "diagnostics must not echo answers"
    assert stored_count(client) == 0


def test_authored_within_the_clock_skew_is_accepted(fhir: FhirActions) -> None:
    qr = {**sample("phq-9"), "authored": _from_now(minutes=2)}  # a clock a little ahead
    assert fhir.submit(qr).status_code == 201


def test_every_problem_is_reported_at_once(fhir: FhirActions) -> None:
    qr = sample("mas-a")
    qr.pop("subject")
    item(qr, "mas-a-1")["answer"] = [{"valueDecimal": 99}]
    qr["item"] = [i for i in qr["item"] if i["linkId"] != "mas-a-2"]
    text = diagnostics(assert_outcome(fhir.submit(qr), 422))
    assert "subject" in text
    assert "mas-a-1" in text
    assert "mas-a-2" in text


def test_issue_expressions_point_at_the_offending_answer(fhir: FhirActions) -> None:
    qr = sample("mas-a")
    qr["item"][2]["answer"] = [{"valueDecimal": 42}]
    body = assert_outcome(fhir.submit(qr), 422)
    assert body["issue"][0]["expression"] == ["QuestionnaireResponse.item[2].answer[0]"]


def test_structure_issue_expressions_are_fhirpath(fhir: FhirActions) -> None:
    qr = sample("mas-a")
    qr["item"][1]["answer"] = [{"valueDecimal": "many"}]
    body = assert_outcome(fhir.submit(qr), 400)
    assert body["issue"][0]["expression"] == [
        "QuestionnaireResponse.item[1].answer[0].valueDecimal"
    ]


BAD_BODIES: dict[str, tuple[bytes, str, int]] = {
    "malformed JSON": (b'{"resourceType": "QuestionnaireResponse",', FHIR_JSON, 400),
    "JSON array": (b'[{"resourceType": "QuestionnaireResponse"}]', FHIR_JSON, 400),
    "JSON string": (b'"QuestionnaireResponse"', FHIR_JSON, 400),
    "empty body": (b"", FHIR_JSON, 400),
    "wrong resourceType": (b'{"resourceType": "Patient", "id": "x"}', FHIR_JSON, 400),
    "no resourceType": (b'{"status": "completed"}', FHIR_JSON, 400),
    "text/plain": (json.dumps(sample("phq-9")).encode(), "text/plain", 415),
    "form encoded": (b"a=b", "application/x-www-form-urlencoded", 415),
    "xml": (b"<QuestionnaireResponse/>", "application/fhir+xml", 415),
    "latin-1 charset": (json.dumps(sample("phq-9")).encode(), f"{FHIR_JSON}; charset=latin-1",
                        415),
    "non-UTF-8 bytes": (
        json.dumps(sample("phq-9")).replace("Patient/example", "Patient/\u00e9").encode("latin-1"),
        FHIR_JSON, 400,
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_unreadable_body_is_rejected_and_not_stored(client: FlaskClient, case: str) -> None:
    data, content_type, status = BAD_BODIES[case]
    resp = client.post(QR_PATH, data=data, content_type=content_type)
    assert_outcome(resp, status)
    assert stored_count(client) == 0


def test_malformed_json_diagnostics_give_a_position_not_content(client: FlaskClient) -> None:
    data = b'{"resourceType": "QuestionnaireResponse", "note": "' + SECRET.encode() + b'" oops}'
    body = assert_outcome(client.post(QR_PATH, data=data, content_type=FHIR_JSON), 400)
    assert "line 1" in diagnostics(body)
    assert SECRET not in json.dumps(body)


def test_missing_content_type_is_a_415(client: FlaskClient) -> None:
    resp = client.post(QR_PATH, data=json.dumps(sample("phq-9")))
    assert_outcome(resp, 415)
    assert stored_count(client) == 0


@pytest.fixture
def small_app(database_url: str) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": database_url, "MAX_BODY_BYTES": 2048})
    yield app
    app.extensions["mit_fhir"].store.dispose()


def test_body_over_the_limit_is_a_413_and_not_stored(small_app: Flask) -> None:
    client = small_app.test_client()
    qr = sample("scl-90-r")
    data = json.dumps(qr).encode()
    assert len(data) > 2048
    body = assert_outcome(client.post(QR_PATH, data=data, content_type=FHIR_JSON), 413)
    assert body["issue"][0]["code"] == "too-long"
    assert stored_count(client) == 0


def test_body_under_the_limit_is_accepted(small_app: Flask) -> None:
    data = json.dumps(sample("mas-a"), separators=(",", ":")).encode()
    assert len(data) < 2048
    resp = small_app.test_client().post(QR_PATH, data=data, content_type=FHIR_JSON)
    assert resp.status_code == 201


# --- search ------------------------------------------------------------------------------------

PHQ9 = "https://mit-fhir.org/fhir/Questionnaire/phq-9"
GAD7 = "https://mit-fhir.org/fhir/Questionnaire/gad-7"
MASA = "https://mit-fhir.org/fhir/Questionnaire/mas-a"

# name -> (form, subject, authored); authored in UTC: A 2024-01-15T10:00, B 2024-03-02T01:30,
# C 2024-03-01T09:00, D 2023-12-31T23:59:59.
SEEDS = {
    "A": ("phq-9", "Patient/alice", "2024-01-15T10:00:00Z"),
    "B": ("phq-9", "Patient/bob", "2024-03-01T23:30:00-02:00"),
    "C": ("gad-7", "Patient/alice", "2024-03-01T10:00:00+01:00"),
    "D": ("mas-a", "Patient/carol", "2023-12-31T23:59:59Z"),
}


@pytest.fixture
def seeded(fhir: FhirActions) -> dict[str, str]:
    """Stores four responses; returns their server ids by seed name (A..D)."""
    ids = {}
    for name, (form, subject, authored) in SEEDS.items():
        qr = sample(form)
        qr["subject"] = {"reference": subject}
        qr["authored"] = authored
        resp = fhir.submit(qr)
        assert resp.status_code == 201, resp.get_json()
        ids[name] = resp.get_json()["id"]
    return ids


def found(client: FlaskClient, ids: dict[str, str], query: Any) -> list[str]:
    resp = client.get(QR_PATH, query_string=query)
    assert resp.status_code == 200, resp.get_json()
    bundle = resp.get_json()
    assert bundle["type"] == "searchset"
    by_id = {v: k for k, v in ids.items()}
    names = [by_id[e["resource"]["id"]] for e in bundle.get("entry", [])]
    assert bundle["total"] == len(names)
    return names


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, "ABCD"),
        ({"subject": "Patient/alice"}, "AC"),
        ({"subject": "alice"}, "AC"),
        ({"subject": "http://localhost/fhir/Patient/alice"}, "AC"),  # on the service's base
        ({"subject": "Patient/ali"}, ""),
        ({"subject": "lice"}, ""),
        ({"patient": "Patient/bob"}, "B"),
        ({"patient": "bob"}, "B"),
        ({"subject": "Patient/alice,Patient/bob"}, "ABC"),
        ({"subject": "alice,carol"}, "ACD"),
        ({"subject": "Patient/alice,alice"}, "AC"),  # two spellings of one reference
        ({"questionnaire": PHQ9}, "AB"),
        ({"questionnaire": f"{PHQ9}|1.0.0"}, "AB"),
        ({"questionnaire": f"{PHQ9},{MASA}"}, "ABD"),
        ({"questionnaire": GAD7, "subject": "Patient/alice"}, "C"),
        ({"questionnaire": GAD7, "subject": "Patient/bob"}, ""),
        ({"status": "completed"}, "ABCD"),
        ({"status": "in-progress"}, ""),
        ({"authored": "2024"}, "ABC"),
        ({"authored": "2023"}, "D"),
        ({"authored": "eq2023"}, "D"),
        ({"authored": "2024-03"}, "BC"),
        ({"authored": "2024-03-01"}, "C"),
        ({"authored": "2024-03-02"}, "B"),
        ({"authored": "2024-03-01T10:00:00+01:00"}, "C"),
        ({"authored": "2024-03-01T09:00:00Z"}, "C"),
        ({"authored": "ge2024-03-01"}, "BC"),
        ({"authored": "gt2024-03-01"}, "B"),
        ({"authored": "gt2024-03-01T08:59:59Z"}, "BC"),
        ({"authored": "lt2024"}, "D"),
        ({"authored": "lt2024-01-15T10:00:00Z"}, "D"),
        ({"authored": "le2024-01-15"}, "AD"),
        ({"authored": "ge2024-01-15T11:00:00+01:00"}, "ABC"),
        ({"authored": "ge2024-01-15T11:00:01+01:00"}, "BC"),
        ({"authored": "le2023-12"}, "D"),
        ({"authored": "2024-01,2023-12"}, "AD"),
        ([("authored", "ge2024-01"), ("authored", "lt2024-03")], "A"),
        ([("authored", "ge2024"), ("subject", "alice")], "AC"),
    ],
)
def test_search(
    client: FlaskClient, seeded: dict[str, str], query: Any, expected: str
) -> None:
    assert sorted(found(client, seeded, query)) == list(expected)


def test_search_by_id(client: FlaskClient, seeded: dict[str, str]) -> None:
    assert found(client, seeded, {"_id": seeded["B"]}) == ["B"]
    assert found(client, seeded, {"_id": f"{seeded['A']},{seeded['D']}"}) == ["A", "D"]


@pytest.mark.parametrize(("sort", "order"), [("date", "DACB"), ("-date", "BCAD")])
def test_sort_by_authored(
    client: FlaskClient, seeded: dict[str, str], sort: str, order: str
) -> None:
    assert "".join(found(client, seeded, {"_sort": sort})) == order


def test_sort_combines_with_criteria(client: FlaskClient, seeded: dict[str, str]) -> None:
    assert found(client, seeded, {"subject": "alice", "_sort": "-date"}) == ["C", "A"]


def test_search_bundle_links_entries(client: FlaskClient, seeded: dict[str, str]) -> None:
    bundle = client.get(QR_PATH, query_string={"_id": seeded["A"]}).get_json()
    assert bundle["entry"][0]["fullUrl"] == (
        f"http://localhost/fhir/QuestionnaireResponse/{seeded['A']}"
    )
    assert bundle["link"][0]["relation"] == "self"


@pytest.mark.parametrize(
    "query",
    [
        {"foo": "bar"},
        {"author": "x"},
        {"subject:Patient": "alice"},
        {"authored:missing": "true"},
        {"authored": "yesterday"},
        {"authored": "2024-13"},
        {"authored": "ne2024"},
        {"authored": "ge2024,2023"},
        {"subject": ""},
        {"subject": "https://ehr.example.org/fhir/Patient/alice"},  # another server's base
        {"subject": "Patient/alice,"},
        {"subject": "Group/alice"},
        {"_sort": "authored"},
        {"_sort": "-_lastUpdated"},
    ],
)
def test_unsupported_search_is_a_400(
    client: FlaskClient, seeded: dict[str, str], query: dict[str, str]
) -> None:
    body = assert_outcome(client.get(QR_PATH, query_string=query), 400)
    assert diagnostics(body)


def test_unknown_parameter_is_named_in_the_outcome(client: FlaskClient) -> None:
    body = assert_outcome(client.get(QR_PATH, query_string={"patinet": "alice"}), 400)
    assert "patinet" in diagnostics(body)


# -- identifiers are unique per patient, and never reveal another patient's ------------------

IDENT = {"system": "urn:example:tablet-app", "value": "fill-0001"}
PATIENT_A, PATIENT_B = "pat-a", "pat-b"
AUDIENCE = "https://mit.example.org/fhir"


@pytest.fixture(scope="module")
def two_patients() -> Iterator[Issuer]:
    """An identity provider with one patient-context app per patient and a clinician's app."""
    idp = Issuer(AUDIENCE).start()
    idp.register("app-a", "patient/*.cruds", patient=PATIENT_A)
    idp.register("app-b", "patient/*.cruds", patient=PATIENT_B)
    idp.register("clinic", "user/*.cruds", fhir_user="Practitioner/dr-1")
    try:
        yield idp
    finally:
        idp.stop()


@pytest.fixture
def secured(two_patients: Issuer, database_url: str) -> Iterator[Flask]:
    application = create_app({"DATABASE_URL": database_url, "AUTH": "jwt",
                              "AUTH_ISSUER": two_patients.url, "AUTH_AUDIENCE": AUDIENCE})
    yield application
    application.extensions["mit_fhir"].store.dispose()


class As:
    """POST and GET with one client's token (tokens cached per test)."""

    def __init__(self, app: Flask, idp: Issuer, client_id: str) -> None:
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {idp.token(client_id)}"}

    def post(self, path: str, resource: dict[str, Any]) -> Any:
        return self.client.post(path, data=json.dumps(resource), content_type=FHIR_JSON,
                                headers=self.headers)

    def get(self, path: str, **query: str) -> Any:
        return self.client.get(path, query_string=query, headers=self.headers)


def of(patient: str, form: str = "phq-9", **extra: Any) -> dict[str, Any]:
    return {**sample(form), "subject": {"reference": f"Patient/{patient}"}, **extra}


def test_another_patients_identifier_is_neither_refused_nor_revealed(
        secured: Flask, two_patients: Issuer) -> None:
    a, b = As(secured, two_patients, "app-a"), As(secured, two_patients, "app-b")
    first = a.post(QR_PATH, of(PATIENT_A, identifier=IDENT))
    assert first.status_code == 201
    # B's app picks the same identifier (they are per device or per app, not global): it gets
    # a response of its own, not a 409 that would tell it A has one.
    resp = b.post(QR_PATH, of(PATIENT_B, "gad-7", identifier=IDENT))
    assert resp.status_code == 201, resp.get_json()
    text = resp.get_data(as_text=True)
    assert first.get_json()["id"] not in text and PATIENT_A not in text
    mine = b.get(QR_PATH, identifier=f"{IDENT['system']}|{IDENT['value']}").get_json()
    assert [e["resource"]["subject"]["reference"] for e in mine["entry"]] == [
        f"Patient/{PATIENT_B}"]
    assert a.get(f"{QR_PATH}/{first.get_json()['id']}").get_json() == first.get_json()


def test_an_identifier_is_unique_within_one_patient(secured: Flask, two_patients: Issuer) -> None:
    a, b = As(secured, two_patients, "app-a"), As(secured, two_patients, "app-b")
    stored_b = b.post(QR_PATH, of(PATIENT_B, identifier=IDENT)).get_json()
    stored_a = a.post(QR_PATH, of(PATIENT_A, identifier=IDENT)).get_json()
    retry = a.post(QR_PATH, of(PATIENT_A, identifier=IDENT))
    assert retry.status_code == 200 and retry.get_json() == stored_a
    assert b.post(QR_PATH, of(PATIENT_B, identifier=IDENT)).get_json() == stored_b
    clash = a.post(QR_PATH, of(PATIENT_A, "gad-7", identifier=IDENT))
    body = assert_outcome(clash, 409)
    assert "this patient" in diagnostics(body) and PATIENT_B not in json.dumps(body)


def test_a_clinician_may_store_one_identifier_for_two_patients(
        secured: Flask, two_patients: Issuer) -> None:
    clinic = As(secured, two_patients, "clinic")
    ids = {clinic.post(QR_PATH, of(p, identifier=IDENT)).get_json()["id"]
           for p in (PATIENT_A, PATIENT_B, PATIENT_A)}
    assert len(ids) == 2
    found = clinic.get(QR_PATH, identifier=f"{IDENT['system']}|{IDENT['value']}").get_json()
    assert found["total"] == 2


@pytest.mark.parametrize("rtype", ["MedicationRequest", "CarePlan", "CareTeam"])
def test_plan_resources_never_refuse_another_patients_identifier(
        secured: Flask, two_patients: Issuer, rtype: str) -> None:
    # Direct creates keep the client's identifiers without a uniqueness check (the service
    # adds its own): the same identifier for two patients is two resources, never a 409.
    bodies = {
        "MedicationRequest": {"status": "active", "intent": "order",
                              "medicationCodeableConcept": {"text": "lamotrigine"}},
        "CarePlan": {"status": "active", "intent": "plan"},
        "CareTeam": {"status": "active"},
    }
    made = []
    for client_id, patient in (("app-a", PATIENT_A), ("app-b", PATIENT_B)):
        resp = As(secured, two_patients, client_id).post(f"/fhir/{rtype}", {
            "resourceType": rtype, **bodies[rtype], "identifier": [IDENT],
            "subject": {"reference": f"Patient/{patient}"}})
        assert resp.status_code == 201, resp.get_json()
        assert PATIENT_A not in resp.get_data(as_text=True) or patient == PATIENT_A
        made.append(resp.get_json()["id"])
    assert len(set(made)) == 2


def test_concurrent_copies_of_one_identifier_all_get_the_one_stored_response(
        secured: Flask, two_patients: Issuer) -> None:
    # A double submit or an impatient retry sends copies at once: every copy is answered with
    # the one response stored (201 once, 200 for the others), none with "submit again".
    headers = {"Authorization": f"Bearer {two_patients.token('app-a')}"}
    body = json.dumps(of(PATIENT_A, "gad-7", identifier=IDENT))
    barrier = threading.Barrier(COPIES)

    def post(_: int) -> tuple[int, Any]:
        client = secured.test_client()
        barrier.wait()
        resp = client.post(QR_PATH, data=body, content_type=FHIR_JSON, headers=headers)
        return resp.status_code, resp.get_json()

    with ThreadPoolExecutor(COPIES) as pool:
        results = list(pool.map(post, range(COPIES)))
    assert sorted(s for s, _ in results) == [200] * (COPIES - 1) + [201], results
    assert len({r["id"] for _, r in results}) == 1
    found = secured.test_client().get(QR_PATH, headers=headers).get_json()
    assert found["total"] == 1


COPIES = 6
