"""Outside attacks on Task integrity with real tokens (verify issue 14): each test states what
a secure service must answer; a failing test is a finding."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from tests.conftest import sample
from tests.security.attack import SDC_TEMP, A, World, task

FHIR = {"Content-Type": "application/fhir+json"}


def _clinician(world: World) -> dict[str, str]:
    return world.headers("user/*.cruds", None, fhir_user="Practitioner/dr-1")


def _patient_app(world: World) -> dict[str, str]:
    return world.headers("patient/*.cruds", A, fhir_user=f"Patient/{A}")


def _new_task(world: World, body: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = world.client.post("/fhir/Task", json=body or task(f"Patient/{A}"),
                             headers={**_clinician(world), **FHIR})
    assert resp.status_code == 201, resp.json
    created: dict[str, Any] = resp.json
    return created


def _response(world: World, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    qr = {k: v for k, v in sample("phq-9").items() if k != "id"}
    qr["subject"] = {"reference": f"Patient/{A}"}
    qr.update(extra)
    resp = world.client.post("/fhir/QuestionnaireResponse", json=qr, headers={**headers, **FHIR})
    assert resp.status_code == 201, resp.json
    stored: dict[str, Any] = resp.json
    return stored


def _output(qr_id: str) -> list[dict[str, Any]]:
    return [{"type": {"coding": [{"system": SDC_TEMP, "code": "questionnaire-response"}]},
             "valueReference": {"reference": f"QuestionnaireResponse/{qr_id}"}}]


def _complete(world: World, stored: dict[str, Any], qr_id: str,
              headers: dict[str, str]) -> Any:
    body = {**stored, "status": "completed", "output": _output(qr_id)}
    return world.client.put(f"/fhir/Task/{stored['id']}", json=body, headers={
        **headers, **FHIR, "If-Match": f'W/"{stored["meta"]["versionId"]}"'})


def test_one_response_does_not_complete_two_tasks(world: World) -> None:
    """The patient's app fills PHQ-9 once and marks every open PHQ-9 Task done with it.
    Secure: the second Task refuses a response that already completed another Task."""
    first, second = _new_task(world), _new_task(world)
    qr = _response(world, _patient_app(world))
    assert _complete(world, first, qr["id"], _patient_app(world)).status_code == 200
    again = _complete(world, second, qr["id"], _patient_app(world))
    assert again.status_code in (409, 422), (again.status_code, again.json)


def test_a_response_older_than_the_task_does_not_complete_it(world: World) -> None:
    """A response authored last year completes a Task assigned today (the patient never
    filled the form asked for). Secure: a response authored before the Task's period starts
    (or before it was authored) is refused."""
    old = _response(world, _patient_app(world), authored="2020-01-01T10:00:00Z")
    fresh = _new_task(world)
    resp = _complete(world, fresh, old["id"], _patient_app(world))
    assert resp.status_code == 422, (resp.status_code, resp.json)


def test_the_patients_app_cannot_complete_a_draft_task(world: World) -> None:
    """A draft Task is not yet asked of the patient (draft -> requested is the only move the
    docs allow from draft). Secure: the patient's own app completing it is refused."""
    draft = _new_task(world, {**task(f"Patient/{A}"), "status": "draft"})
    assert draft["status"] == "draft"
    qr = _response(world, _patient_app(world))
    resp = _complete(world, draft, qr["id"], _patient_app(world))
    assert resp.status_code in (403, 409, 422), (resp.status_code, resp.json)


def test_a_response_of_the_patients_app_cannot_claim_a_clinician_author(world: World) -> None:
    """The patient's own app stores a response whose author and source are a Practitioner,
    then completes its Task with it: the clinician appears to have rated the patient.
    Secure: refused (4xx), or stored with the Patient as author and source."""
    claim = {"author": {"reference": "Practitioner/dr-1"},
             "source": {"reference": "Practitioner/dr-1"}}
    qr = {k: v for k, v in sample("phq-9").items() if k != "id"}
    qr.update(subject={"reference": f"Patient/{A}"}, **claim)
    resp = world.client.post("/fhir/QuestionnaireResponse", json=qr,
                             headers={**_patient_app(world), **FHIR})
    if resp.status_code >= 400:
        return
    assert resp.json.get("author") == {"reference": f"Patient/{A}"}, resp.json.get("author")
    assert resp.json.get("source") == {"reference": f"Patient/{A}"}, resp.json.get("source")


def test_two_completions_at_once_complete_once(world: World) -> None:
    """Two threads complete the same Task with two responses over HTTP."""
    stored = _new_task(world)
    qrs = [_response(world, _patient_app(world)) for _ in range(2)]
    results: list[int] = []
    headers = _patient_app(world)

    def go(qr_id: str) -> None:
        client = world.app.test_client()
        body = {**stored, "status": "completed", "output": _output(qr_id)}
        r = client.put(f"/fhir/Task/{stored['id']}", json=body,
                       headers={**headers, **FHIR, "If-Match": 'W/"1"'})
        results.append(r.status_code)

    threads = [threading.Thread(target=go, args=(q["id"],)) for q in qrs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results)[0] == 200 and sorted(results)[1] in (409, 412), results
    now = world.client.get(f"/fhir/Task/{stored['id']}", headers=_clinician(world)).json
    assert now["meta"]["versionId"] == "2" and len(now["output"]) == 1


def test_a_patient_users_app_without_patient_context_is_confined_to_that_patient(
        world: World) -> None:
    """A token whose fhirUser is Patient/A (the patient's own app, as the Task API itself
    recognises it) but with user-level scopes and no patient claim: it reads and searches B's
    Tasks and responses. Secure: a Patient user reaches only that Patient's compartment."""
    from tests.security.attack import B

    patient_user = world.headers("user/*.rs", None, fhir_user=f"Patient/{A}")
    leaked = []
    for rtype in ("Task", "QuestionnaireResponse"):
        for rid in sorted(world.ids[B][rtype])[:1]:
            resp = world.client.get(f"/fhir/{rtype}/{rid}", headers=patient_user)
            if resp.status_code == 200:
                leaked.append(f"GET /fhir/{rtype}/{rid} -> 200")
        found = world.client.get(f"/fhir/{rtype}?patient={B}", headers=patient_user)
        if found.status_code == 200 and world.leaks(found.data):
            leaked.append(f"GET /fhir/{rtype}?patient={B} -> 200 with B's data")
    assert not leaked, leaked


def _hostile_tasks() -> dict[str, dict[str, Any]]:
    base = task(f"Patient/{A}")
    input_q = base["input"][0]
    other_input = {"type": {"text": "note"}, "valueString": "x"}
    return {
        "period starting before year 1 in UTC": {
            **base, "restriction": {"period": {"start": "0001-01-01T00:00:00+14:00",
                                               "end": "0001-01-20T00:00:00+14:00"}}},
        "period ending after year 9999 in UTC": {
            **base, "restriction": {"period": {"start": "9999-12-01T00:00:00-14:00",
                                               "end": "9999-12-31T23:59:59-14:00"}}},
        "authoredOn before year 1 in UTC": {**base, "authoredOn": "0001-01-01T00:00:00+14:00"},
        "period start only, year 9999 (the window ends past 9999)": {
            **base, "restriction": {"period": {"start": "9999-12-25"}}},
        "50,000 extra inputs": {**base, "input": [input_q] + [other_input] * 50_000},
        "period start after end": {
            **base, "restriction": {"period": {"start": "2026-02-01", "end": "2026-01-01"}}},
        "start NUL character in a note": {**base, "note": [{"text": "a\u0000b"}]},
    }


def test_hostile_task_bodies_are_4xx_with_nothing_stored(world: World) -> None:
    """POST /fhir/Task with bodies a client may write: never a 500; a refusal stores nothing."""
    clinician = _clinician(world)

    def count() -> int:
        found = world.client.get(f"/fhir/Task?patient={A}&_count=500", headers=clinician)
        return len(found.json.get("entry", []))

    answers = {}
    for name, body in _hostile_tasks().items():
        before = count()
        resp = world.client.post("/fhir/Task", json=body, headers={**clinician, **FHIR})
        answers[name] = resp.status_code
        if resp.status_code >= 400:
            assert resp.json["resourceType"] == "OperationOutcome", name
            assert count() == before, name
    assert all(code < 500 for code in answers.values()), sorted(answers.items())
    assert answers["period start after end"] == 422, answers


def test_a_task_dated_before_year_1_in_utc_breaks_no_later_search(world: World) -> None:
    """A Task whose period (and authoredOn) fall before 0001-01-01 once in UTC is accepted
    (201, where a response so dated is a 422); then the searches and the due list must still
    answer 200."""
    clinician = _clinician(world)
    body = {**task(f"Patient/{A}"), "authoredOn": "0001-01-01T00:00:00+14:00",
            "restriction": {"period": {"start": "0001-01-01T00:00:00+14:00",
                                       "end": "0001-01-01T01:00:00+14:00"}}}
    made = world.client.post("/fhir/Task", json=body, headers={**clinician, **FHIR})
    if made.status_code >= 400:
        return  # refused: fine
    for query in (f"patient={A}&_sort=date", f"patient={A}&_sort=-date",
                  f"patient={A}&period=eb2026-01-01", f"patient={A}&period=le0001-01-02",
                  f"patient={A}&authored-on=lt2000-01-01"):
        resp = world.client.get(f"/fhir/Task?{query}", headers=clinician)
        assert resp.status_code == 200, (query, resp.status_code, resp.data[:200])
    from mit_fhir.usecases import tasks

    context = world.app.extensions["mit_fhir"]
    with world.app.app_context(), context.store.transaction() as conn:
        tasks.open_tasks(conn, A)
        tasks.due_tasks(conn, datetime.now(UTC), overdue=True)
    # The due marks (due.summary) of a Task due in year 1 UTC: test_due_dates.py.


def _schedule_for_a() -> dict[str, Any]:
    from mit_fhir.fhir.schedule import CATEGORY_CODE, CATEGORY_SYSTEM

    return {"resourceType": "CarePlan", "status": "active", "intent": "plan",
            "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": CATEGORY_CODE}]}],
            "subject": {"reference": f"Patient/{A}"},
            "author": {"reference": "Practitioner/dr-1"},
            "activity": [{"detail": {
                "kind": "Task", "status": "scheduled",
                "instantiatesCanonical": ["https://mit-fhir.org/fhir/Questionnaire/phq-9"],
                "scheduledTiming": {"repeat": {"boundsPeriod": {"start": "2020-01-01"},
                                               "frequency": 1, "period": 1,
                                               "periodUnit": "wk"}}}}]}


def _tasks_based_on(world: World, plan_id: str) -> list[dict[str, Any]]:
    found = world.client.get(f"/fhir/Task?based-on=CarePlan/{plan_id}",
                             headers=_clinician(world)).json
    return [e["resource"] for e in found.get("entry", [])]


def test_the_patients_app_creates_no_tasks_through_a_schedule(world: World) -> None:
    """POST /fhir/Task by the patient's own app is a 403 ("creates no Task"); the same app
    POSTing a schedule CarePlan (author: any Practitioner it names) gets the Task made for it.
    Secure: the schedule is refused to the patient's own app as the Task is."""
    resp = world.client.post("/fhir/CarePlan", json=_schedule_for_a(),
                             headers={**_patient_app(world), **FHIR})
    made = _tasks_based_on(world, resp.json["id"]) if resp.status_code == 201 else []
    assert resp.status_code == 403, (resp.status_code, len(made),
                                     [t.get("requester") for t in made])


def test_the_patients_app_cannot_cancel_its_tasks_by_revoking_the_schedule(
        world: World) -> None:
    """The patient's own app may not cancel a Task (403 on PUT Task -> cancelled); revoking
    the clinician's schedule CarePlan withdraws its unstarted Task all the same.
    Secure: the revoke is refused to the patient's own app (403) and the Task stays open."""
    made = world.client.post("/fhir/CarePlan", json=_schedule_for_a(),
                             headers={**_clinician(world), **FHIR})
    assert made.status_code == 201, made.json
    plan = made.json
    (open_task,) = _tasks_based_on(world, plan["id"])
    resp = world.client.put(f"/fhir/CarePlan/{plan['id']}", json={**plan, "status": "revoked"},
                            headers={**_patient_app(world), **FHIR,
                                     "If-Match": f'W/"{plan["meta"]["versionId"]}"'})
    after = world.client.get(f"/fhir/Task/{open_task['id']}", headers=_clinician(world)).json
    assert resp.status_code == 403, (resp.status_code, after["status"])
    assert after["status"] == open_task["status"]


def _put_status(world: World, stored: dict[str, Any], headers: dict[str, str],
                status: str, **extra: Any) -> Any:
    body = {**stored, "status": status, **extra}
    return world.client.put(f"/fhir/Task/{stored['id']}", json=body, headers={
        **headers, **FHIR, "If-Match": f'W/"{stored["meta"]["versionId"]}"'})


def test_the_patients_app_cannot_undo_a_clinicians_hold(world: World) -> None:
    """The clinician puts A's Task on hold; the patient's own app moves it to in-progress and
    completes it. Secure (low): a hold is the clinician's; the patient's app only starts a
    Task that is asked of it (requested/received/accepted/ready)."""
    held = _put_status(world, _new_task(world), _clinician(world), "on-hold")
    assert held.status_code == 200 and held.json["status"] == "on-hold"
    resp = _put_status(world, held.json, _patient_app(world), "in-progress")
    assert resp.status_code in (403, 409, 422), (resp.status_code, resp.json.get("status"))


def test_a_cancel_racing_a_completion_leaves_one_consistent_task(world: World) -> None:
    """The clinician cancels while the patient's app completes the same Task (both at
    version 1), five times: one wins, the other gets 409/412, and the Task is the winner's."""
    for _ in range(5):
        stored = _new_task(world)
        qr = _response(world, _patient_app(world))
        results: dict[str, int] = {}
        clin, pat = _clinician(world), _patient_app(world)

        def go(name: str, headers: dict[str, str], body: dict[str, Any],
               results: dict[str, int] = results, tid: str = stored["id"]) -> None:
            r = world.app.test_client().put(f"/fhir/Task/{tid}", json=body,
                                            headers={**headers, **FHIR, "If-Match": 'W/"1"'})
            results[name] = r.status_code

        threads = [
            threading.Thread(target=go, args=("cancel", clin, {
                **stored, "status": "cancelled", "statusReason": {"text": "not needed"}})),
            threading.Thread(target=go, args=("complete", pat, {
                **stored, "status": "completed", "output": _output(qr["id"])}))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [n for n, code in results.items() if code == 200]
        assert len(winners) == 1 and set(results.values()) - {200} <= {409, 412}, results
        now = world.client.get(f"/fhir/Task/{stored['id']}", headers=clin).json
        assert now["meta"]["versionId"] == "2", results
        assert now["status"] == ("cancelled" if winners == ["cancel"] else "completed")
        assert ("output" in now) == (winners == ["complete"])


def test_task_specific_search_parameters_show_nothing_of_b(world: World) -> None:
    """A's tokens (patient context; the patient's own app) search Tasks by B's owner,
    requester, based-on, identifier, _id, with B's spellings: 200 or 4xx, never B's data."""
    from tests.security.attack import BASE, B

    b_tasks = sorted(world.ids[B]["Task"])
    values = [f"owner=Patient/{B}", f"owner={BASE}/Patient/{B}", f"requester=Patient/{B}",
              f"owner=Patient/{B}&patient={B}", f"for=Patient/{B}", f"subject=Patient/{B}",
              f"owner=Patient/{A},Patient/{B}", f"owner=patient/{B}", f"owner=Patient%2F{B}",
              *(f"identifier=https://mit-fhir.org/fhir/identifier/task|{t}" for t in b_tasks),
              *(f"_id={t}" for t in b_tasks), *(f"_id={t}&owner=Patient/{A}" for t in b_tasks),
              f"_id={','.join(b_tasks)}", "status=requested", "code=complete-questionnaire",
              "questionnaire=https://mit-fhir.org/fhir/Questionnaire/phq-9",
              "period=le2100-01-01", "authored-on=gt2000-01-01", "_sort=date"]
    bad = []
    for headers in (world.headers(), _patient_app(world)):
        for query in values:
            resp = world.client.get(f"/fhir/Task?{query}", headers=headers)
            if resp.status_code >= 500 or (resp.status_code == 200 and world.leaks(resp.data)):
                bad.append((query, resp.status_code))
    assert not bad, bad


def test_a_clinician_rated_form_cannot_be_given_to_the_patient_to_fill(world: World) -> None:
    """POST /fhir/Task for the clinician-rated BPD criteria with owner Patient/A (any caller
    with Task create, e.g. a patient-context app): the service keeps the owner, so the
    patient's own app (and the patient's pages) may then fill and complete the clinician's
    rating. Secure (low): a clinician-rated form's Task is not owned by the patient (422)."""
    body = {**task(f"Patient/{A}", "bpd-criteria"), "owner": {"reference": f"Patient/{A}"}}
    resp = world.client.post("/fhir/Task", json=body, headers={**world.headers(), **FHIR})
    assert resp.status_code == 422, (resp.status_code, resp.json.get("owner"))
