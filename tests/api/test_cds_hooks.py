"""CDS Hooks 2.0: discovery, and patient-view cards from requests shaped as the spec shows them
(https://cds-hooks.hl7.org/2.0/#example, hooks/patient-view), in development mode and with
bearer JWTs from a real identity provider."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mit_fhir.app import create_app
from mit_fhir.usecases.cds import SUMMARY_MAX
from mit_fhir.usecases.demo import load_demo
from tests.conftest import sample
from tests.fhir.test_extract import GOLDEN, compare_golden
from tests.security.conftest import (  # noqa: F401 - fixtures
    PATIENT,
    Tokens,
    bearer,
    issuer,
    secured_demo,
    secured_settings,
    tokens,
)
from tests.security.issuer import Issuer

DEMO = "demo-mit-1"
SERVICE = "/cds-services/mit-outcomes"
# The specification's example request, verbatim but for the patient (and its prefetch key).
SPEC_REQUEST: dict[str, Any] = {
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "fhirServer": "http://hooks.smarthealthit.org:9080",
    "hook": "patient-view",
    "fhirAuthorization": {
        "access_token": "some-opaque-fhir-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Patient.read patient/Observation.read",
        "subject": "cds-service4",
    },
    "context": {"userId": "Practitioner/example", "patientId": DEMO, "encounterId": "89284"},
    "prefetch": {"patientToGreet": {"resourceType": "Patient", "gender": "female",
                                    "id": DEMO, "active": True}},
}


def hook(patient: str = DEMO, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(SPEC_REQUEST)
    body["context"]["patientId"] = patient
    body.update(changes)
    return body


def call(client: FlaskClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(SERVICE, data=json.dumps(body), content_type="application/json",
                       headers=headers or {})


def outcome(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body: dict[str, Any] = resp.get_json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == code
    return body


def test_discovery_lists_the_patient_view_service(client: FlaskClient) -> None:
    resp = client.get("/cds-services")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    (service,) = resp.get_json()["services"]
    assert service["hook"] == "patient-view" and service["id"] == "mit-outcomes"
    assert service["title"] and service["description"]


def test_the_demo_patients_cards(app: Flask, client: FlaskClient) -> None:
    load_demo(app.extensions["mit_fhir"])
    resp = call(client, hook())
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    cards = resp.get_json()["cards"]
    summaries = [c["summary"] for c in cards]
    assert "DERS 118 -> 57 since 2019-03: reliable improvement, recovered" in summaries
    assert "SCL-90-R GSI 2.1 -> 0.222 since 2019-03: reliable improvement, recovered" in summaries
    bpd = next(s for s in summaries if "8 -> 3" in s)
    assert "3 (synthetic)" in bpd and "threshold met -> threshold not met" in bpd
    for card in cards:
        assert len(card["summary"]) <= SUMMARY_MAX
        assert card["indicator"] == "info"
        assert card["source"]["label"]
        (link,) = card["links"]
        assert link == {"label": "Open the outcomes view", "type": "smart",
                        "url": "http://localhost/app/launch?view=outcomes"}
    assert "synthetic demonstration data" in cards[1]["detail"]
    # The demo's follow-up forms, due 22 days before the load (now), each after its change card.
    assert summaries == [summaries[0], summaries[1], "DERS overdue by 3 weeks (last 2020-09-07)",
                         summaries[3], "SCL-90-R overdue by 3 weeks (last 2020-09-07)"]
    compare_golden(GOLDEN / "cds" / "demo-mit-1-patient-view.json", load_day_free(resp.get_json()))


def load_day_free(body: dict[str, Any]) -> dict[str, Any]:
    """The response with the follow-up's due date (the only text that moves with the day the
    demo is loaded) checked, then written as its distance from the load."""
    due = (datetime.now(UTC).date() - timedelta(days=22)).isoformat()
    for card in body["cards"]:
        if " overdue by " in card["summary"]:
            assert f": due {due}, " in card["detail"]
            card["detail"] = card["detail"].replace(due, "<22 days before the load>")
    return body


def test_the_launch_url_follows_the_configured_base(database_url: str) -> None:
    app = create_app({"DATABASE_URL": database_url,
                      "BASE_URL": "https://ehr.example.org/mit/fhir"})
    try:
        load_demo(app.extensions["mit_fhir"])
        client = app.test_client()
        # The proxy in front passes its own name; another (F9) gets no link built from it.
        cards = call(client, hook(), {"Host": "ehr.example.org"}).get_json()["cards"]
        outcome(call(client, hook(), {"Host": "evil.example"}), 400, "invalid")
    finally:
        app.extensions["mit_fhir"].store.dispose()
    assert {c["links"][0]["url"] for c in cards} == {
        "https://ehr.example.org/mit/app/launch?view=outcomes"}


def submit(client: FlaskClient, qr: dict[str, Any]) -> None:
    resp = client.post("/fhir/QuestionnaireResponse", data=json.dumps(qr),
                       content_type="application/fhir+json")
    assert resp.status_code == 201, resp.get_data(as_text=True)


def test_reliable_deterioration_is_a_warning(client: FlaskClient) -> None:
    for name, when in (("complete", "2024-01-01T10:00:00Z"), ("severe", "2024-04-01T10:00:00Z")):
        submit(client, {**sample("phq-9", name), "authored": when,
                        "subject": {"reference": "Patient/p-worse"}})
    cards = call(client, hook("p-worse")).get_json()["cards"]
    (card,) = [c for c in cards if "since" in c["summary"]]
    assert card["summary"] == "PHQ-9 13 -> 20 since 2024-01: reliable deterioration"
    assert card["indicator"] == "warning"


def critical_answer(app: Flask, qid: str, link_id: str) -> list[dict[str, Any]]:
    """The critical-answer marks of one item of the catalogue's form."""
    q = app.extensions["mit_fhir"].catalogue.get(qid)
    (item,) = [i for i in q["item"] if i["linkId"] == link_id]
    return [e for e in item["extension"] if e["url"].endswith("/critical-answer")]


def message(mark: dict[str, Any]) -> str:
    return str(next(p["valueString"] for p in mark["extension"] if p["url"] == "message"))


def test_a_high_risk_c_ssrs_triage_is_a_critical_card_even_at_the_first_screen(
        app: Flask, client: FlaskClient) -> None:
    submit(client, {**sample("cssrs-screener", "high-intent"),
                    "subject": {"reference": "Patient/p-risk"}})
    (card,) = call(client, hook("p-risk")).get_json()["cards"]
    assert card["indicator"] == "critical"
    (critical,) = [m for m in critical_answer(app, "cssrs-screener", "cssrs-screener-triage")
                   if {"url": "level", "valueCode": "critical"} in m["extension"]]
    assert card["summary"].startswith("C-SSRS screener 20")
    assert message(critical)[:60] in card["summary"]
    assert "High risk" in card["detail"]


def test_intent_with_q5_unanswered_is_still_a_critical_card(client: FlaskClient) -> None:
    """Q1-Q4 yes, Q5 skipped, Q6 no: yes to 4 is high risk whatever Q5 says (F3)."""
    qr = sample("cssrs-screener", "intent-q5-omitted")
    assert "cssrs-screener-5" not in {i["linkId"] for i in qr["item"]}
    submit(client, {**qr, "subject": {"reference": "Patient/p-skip5"}})
    (card,) = call(client, hook("p-skip5")).get_json()["cards"]
    assert card["indicator"] == "critical" and "High risk" in card["detail"]


def test_a_moderate_c_ssrs_triage_is_a_warning_card(client: FlaskClient) -> None:
    submit(client, {**sample("cssrs-screener", "moderate-past-behaviour"),
                    "subject": {"reference": "Patient/p-moderate"}})
    (card,) = call(client, hook("p-moderate")).get_json()["cards"]
    assert card["indicator"] == "warning" and "Moderate risk" in card["detail"]


def test_phq9_item_9_above_0_is_a_warning_card_whatever_the_total(
        app: Flask, client: FlaskClient) -> None:
    qr = sample("phq-9")
    (item9,) = [i for i in qr["item"] if i["linkId"] == "phq-9-9"]
    assert item9["answer"][0]["valueCoding"]["code"] != "LA6568-5"  # not "Not at all"
    submit(client, {**qr, "subject": {"reference": "Patient/p-item9"}})
    (card,) = call(client, hook("p-item9")).get_json()["cards"]
    (mark,) = critical_answer(app, "phq-9", "phq-9-9")
    assert card["indicator"] == "warning"
    assert message(mark) in card["detail"] and "better off dead" in card["detail"]
    assert card["links"][0]["type"] == "smart" and len(card["summary"]) <= SUMMARY_MAX


def item_9_not_at_all(qr: dict[str, Any]) -> dict[str, Any]:
    """The response with PHQ-9 item 9 answered "Not at all" (weight 0)."""
    qr = copy.deepcopy(qr)
    for item in qr["item"]:
        if item["linkId"] == "phq-9-9":
            item["answer"] = [{"valueCoding": {"system": "http://loinc.org", "code": "LA6568-5",
                                               "display": "Not at all"}}]
    return qr


def test_only_the_most_recent_assessment_raises_a_card(client: FlaskClient) -> None:
    first = sample("phq-9")
    later = item_9_not_at_all(first)
    for qr, when in ((first, "2024-01-01T10:00:00Z"), (later, "2024-02-01T10:00:00Z")):
        submit(client, {**qr, "authored": when, "subject": {"reference": "Patient/p-calmer"}})
    cards = call(client, hook("p-calmer")).get_json()["cards"]
    assert [c["indicator"] for c in cards if c["indicator"] in ("warning", "critical")] == []


def test_the_most_recent_assessment_is_the_latest_instant_whatever_the_offset(
        client: FlaskClient) -> None:
    # 00:30+14:00 on 2 March is 10:30Z on 1 March: the Z response at 12:00 is the later one,
    # though its text sorts first (an EHR sending offsets, the form page sending Z).
    risky = sample("phq-9")
    for qr, when in ((item_9_not_at_all(risky), "2024-03-02T00:30:00+14:00"),
                     (risky, "2024-03-01T12:00:00Z")):
        submit(client, {**qr, "authored": when, "subject": {"reference": "Patient/p-zones"}})
    cards = call(client, hook("p-zones")).get_json()["cards"]
    (alert,) = [c for c in cards if "better off dead" in c["detail"]]
    assert alert["indicator"] == "warning"
    assert "Assessment of 2024-03-01" in alert["detail"]


def test_a_patient_cannot_hide_its_risk_card_with_a_future_dated_response(
        secured_demo: Flask, tokens: Tokens) -> None:  # noqa: F811
    api = secured_demo.test_client()
    risky = {**sample("phq-9"), "authored": "2024-03-01T10:00:00+01:00",
             "subject": {"reference": f"Patient/{PATIENT}"}}

    def post(qr: dict[str, Any], who: str) -> Any:
        return api.post("/fhir/QuestionnaireResponse", data=json.dumps(qr),
                        content_type="application/fhir+json", headers=tokens(who))

    def risk_cards() -> list[dict[str, Any]]:
        cards = call(api, hook(PATIENT), tokens("clinic-app")).get_json()["cards"]
        return [c for c in cards if "better off dead" in c["detail"]]

    assert post(risky, "clinic-app").status_code == 201
    assert [c["indicator"] for c in risk_cards()] == ["warning"]
    soon = (datetime.now(UTC) + timedelta(minutes=10)).isoformat(timespec="seconds")
    for when in ("9999-12-31T00:00:00Z", soon):
        resp = post({**item_9_not_at_all(risky), "authored": when}, "patient-app")
        body = outcome(resp, 422, "value")
        assert body["issue"][0]["expression"] == ["QuestionnaireResponse.authored"]
    assert [c["indicator"] for c in risk_cards()] == ["warning"]  # nothing was stored


def test_no_change_since_baseline_means_no_card(client: FlaskClient) -> None:
    submit(client, {**item_9_not_at_all(sample("phq-9")),
                    "subject": {"reference": "Patient/p-once"}})
    assert call(client, hook("p-once")).get_json() == {"cards": []}


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda b: b.pop("hookInstance"), "hookInstance"),
    (lambda b: b.update(hook="order-select"), "hook"),
    (lambda b: b["context"].pop("patientId"), "context.patientId"),
    (lambda b: b["context"].update(patientId="../etc"), "context.patientId"),
    (lambda b: b.pop("context"), "context"),
    (lambda b: b.pop("fhirServer"), "fhirAuthorization"),
    (lambda b: b["fhirAuthorization"].update(token_type="MAC"), "fhirAuthorization.token_type"),
    (lambda b: b.update(fhirServer="not a url"), "fhirServer"),
])
def test_malformed_requests_are_400(client: FlaskClient, mutate: Any, field: str) -> None:
    body = hook()
    mutate(body)
    result = outcome(call(client, body), 400, "invalid")
    assert any(i.get("expression") == [field] for i in result["issue"]), result


def test_bodies_that_are_not_json_objects_are_refused(client: FlaskClient) -> None:
    outcome(client.post(SERVICE, data="{", content_type="application/json"), 400, "invalid")
    outcome(client.post(SERVICE, data="[]", content_type="application/json"), 400, "invalid")
    outcome(client.post(SERVICE, data=json.dumps(hook()), content_type="text/plain"),
            415, "not-supported")
    assert client.get(SERVICE).status_code == 405


def test_with_jwt_auth_discovery_is_public_and_the_service_needs_a_token(
        secured_demo: Flask, tokens: Tokens, issuer: Issuer) -> None:  # noqa: F811
    api = secured_demo.test_client()
    assert api.get("/cds-services").status_code == 200
    outcome(call(api, hook()), 401, "login")
    resp = call(api, hook(), tokens("clinic-app"))
    # Three change cards, and the demo's two overdue follow-up forms (the token may search Tasks).
    assert resp.status_code == 200 and len(resp.get_json()["cards"]) == 5
    # The EHR's CDS client, with a token minted for this patient's context.
    own = issuer.mint({"sub": "ehr-cds-client", "client_id": "ehr", "patient": DEMO,
                       "scope": "patient/Observation.rs"})
    assert call(api, hook(), bearer(own)).status_code == 200
    outcome(call(api, hook(), tokens("patient-app")), 403, "forbidden")  # another patient
    no_scores = issuer.mint({"sub": "x", "scope": "user/MedicationRequest.rs"})
    outcome(call(api, hook(), bearer(no_scores)), 403, "forbidden")
    expired = issuer.mint({"sub": "x", "scope": "user/Observation.rs", "exp": 1})
    outcome(call(api, hook(), bearer(expired)), 401, "login")


def test_the_call_is_audited(secured_demo: Flask, tokens: Tokens) -> None:  # noqa: F811
    api = secured_demo.test_client()
    assert call(api, hook(), tokens("clinic-app")).status_code == 200
    events = [e["resource"] for e in
              api.get("/fhir/AuditEvent", headers=tokens("clinic-app")).get_json()["entry"]]
    assert any(any(en.get("what", {}).get("reference") == f"Patient/{DEMO}"
                   for en in ev.get("entity", [])) for ev in events)
