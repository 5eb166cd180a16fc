"""Accepting a QuestionnaireResponse: validate it, score it, store it and its Observations."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from sqlalchemy import Connection

from mit_fhir.errors import Conflict, Issue, PreconditionFailed, Unprocessable
from mit_fhir.fhir.audit import provenance, provenance_index
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.fhir.extract import Extraction, data_source_tags, transaction_bundle
from mit_fhir.fhir.index import observation_index, response_index, sort_date
from mit_fhir.fhir.plans import PlanError
from mit_fhir.fhir.search import date_key, reference_rows
from mit_fhir.fhir.validate import check_against, check_structure
from mit_fhir.fhir.weights import check_response
from mit_fhir.store import repository
from mit_fhir.store.repository import (
    Store,
    buffered_inserts,
    insert,
    new_id,
    now_instant,
    unbuffered,
)
from mit_fhir.sync import outbox
from mit_fhir.usecases.care_plans import PLAN_FORMS, apply_plan
from mit_fhir.usecases.catalogue import Catalogue, Questionnaire
from mit_fhir.usecases.context import Context
from mit_fhir.usecases.scorer import HistoryLookup, Scorer
from mit_fhir.vocabulary import BASE

Resource = dict[str, Any]
QR_IDENTIFIER_SYSTEM = f"{BASE}/identifier/questionnaire-response"
# A response dated in the future would be every timeline's and card's "latest" until then: a
# patient's own token could hide its risk alert for good with a year-9999 response (attacker
# report F2). The margin absorbs a device clock running a little ahead.
CLOCK_SKEW = timedelta(minutes=5)


def questionnaire_for(catalogue: Catalogue, qr: Resource) -> Questionnaire:
    """The catalogue Questionnaire a response answers (422 when unknown)."""
    canonical = qr.get("questionnaire")
    if not isinstance(canonical, str) or not canonical:
        raise Unprocessable(
            "the QuestionnaireResponse names no questionnaire",
            [Issue("questionnaire is required", code="required",
                   expression=("QuestionnaireResponse.questionnaire",))],
        )
    found = catalogue.resolve(canonical)
    if found is None:
        raise Unprocessable(
            "unknown Questionnaire",
            [Issue(f"no Questionnaire '{canonical[:200]}' in the catalogue", code="not-found",
                   expression=("QuestionnaireResponse.questionnaire",))],
        )
    return found


def validated(
    catalogue: Catalogue, qr: Resource, questionnaire: Questionnaire | None = None
) -> Questionnaire:
    """Check a response's structure and fit; return the Questionnaire it answers."""
    check_structure(qr, QuestionnaireResponse)
    if questionnaire is None:
        questionnaire = questionnaire_for(catalogue, qr)
    check_against(qr, questionnaire)
    check_response(qr, questionnaire)
    if qr.get("status") in ("completed", "amended") and not qr.get("authored"):
        raise Unprocessable(
            "authored is required",
            [Issue("a completed response needs authored: its scores are dated by it",
                   code="required", expression=("QuestionnaireResponse.authored",))],
        )
    if qr.get("authored") and date_key(qr["authored"]) is None:
        raise Unprocessable(
            "authored is out of range",
            [Issue("authored must be an instant between the years 1 and 9999 in UTC",
                   code="value", expression=("QuestionnaireResponse.authored",))],
        )
    if qr.get("authored") and str(date_key(qr["authored"])) > _latest_accepted():
        raise Unprocessable(
            "authored is in the future",
            [Issue(f"authored must not be later than now (plus {_minutes(CLOCK_SKEW)} minutes "
                   "for clock skew)", code="value",
                   expression=("QuestionnaireResponse.authored",))],
        )
    return questionnaire


def _latest_accepted() -> str:
    """Now plus CLOCK_SKEW, in the UTC text date_key gives (so the two compare as strings)."""
    return (datetime.now(UTC) + CLOCK_SKEW).strftime("%Y-%m-%dT%H:%M:%S")


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def as_new(qr: Resource) -> Resource:
    """The response as the service stores it: a fresh id, an identifier, and of the client's
    meta only the data-source tags (they label synthetic or published data)."""
    tags = data_source_tags(qr)
    qr = {k: v for k, v in qr.items() if k not in ("id", "meta")}
    qr["id"] = new_id()
    if tags:
        qr["meta"] = {"tag": tags}
    # R4 allows one identifier on a response; ours makes the EHR write idempotent.
    qr.setdefault("identifier", {"system": QR_IDENTIFIER_SYSTEM, "value": qr["id"]})
    return qr


def record(
    conn: Connection,
    context: Context,
    qr: Resource,
    questionnaire: Questionnaire,
    lookup: HistoryLookup | None = None,
    business_key: str | None = None,
) -> list[Resource]:
    """Store a validated `as_new` response, its Observations (with their Provenance), plan
    resources and outbox rows; return what is synced (not the local Provenance).

    Raises PlanError (a plan that cannot be recorded); the caller's transaction must then roll
    back.
    """
    insert(conn, qr, response_index(qr, questionnaire), sort_date=sort_date(qr),
           business_key=business_key)
    ref = {"reference": f"QuestionnaireResponse/{qr['id']}"}
    extraction = context.scorer.observations(conn, qr, questionnaire, ref, lookup=lookup)
    stored = [qr]
    for obs in extraction.resources() if extraction else ():
        stored.append(insert(conn, obs, observation_index(obs), sort_date=sort_date(obs)))
    if len(stored) > 1:
        # Local record only: the EHR receives the Observations' derivedFrom link.
        prov = {**provenance(qr, stored[1:], now_instant()), "id": new_id()}
        insert(conn, prov, provenance_index(prov, qr.get("subject", {}).get("reference")))
    if questionnaire.get("id") in PLAN_FORMS:
        with unbuffered(conn):  # plans read the patient's current plan resources
            stored += apply_plan(conn, qr, questionnaire)
    if context.sync_enabled:
        outbox.enqueue(conn, stored, time.time())
    return stored


def _client_identifier(qr: Resource) -> str | None:
    """The `system|value` of the identifier the client gave, or None."""
    ident = qr.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        return f"{ident.get('system', '')}|{ident['value']}"
    return None


def _patient(qr: Resource) -> str:
    """The validated subject as the index holds it (`Patient/<id>`)."""
    return reference_rows("subject", qr.get("subject"))[0][1]


def _business_key(patient: str, token: str) -> str:
    """The unique key of one patient's identifier: two patients' responses may share one."""
    digest = hashlib.sha256(orjson.dumps([patient, token])).hexdigest()
    return f"identifier:{digest}"


def _content(qr: Resource, ignored: Collection[str]) -> Resource:
    return {k: v for k, v in qr.items() if k not in ("id", "meta", *ignored)}


def _already_stored(conn: Connection, qr: Resource, token: str,
                    ignored: Collection[str]) -> Resource | None:
    """The response stored under this identifier for the same patient: itself if the same
    (a retry), else a 409 Conflict. Other patients' responses are never looked at, so the
    answer cannot tell a client that another patient's response has this identifier."""
    found = repository.search(conn, "QuestionnaireResponse", [
        Criterion("identifier", "eq", (token,)), Criterion("patient", "eq", (_patient(qr),))],
        limit=1)
    if not found:
        return None
    stored = found[0]
    if _content(stored, ignored) != _content(qr, ignored):
        raise Conflict("another QuestionnaireResponse of this patient already has this "
                       "identifier")
    return stored


# Told, inside the submission's transaction, every resource it wrote (see submit_once).
OnStored = Callable[[Connection, list[Resource]], None]


def submit(context: Context, qr: Resource, on_stored: OnStored | None = None) -> Resource:
    """submit_once() for callers that need only the stored response."""
    return submit_once(context, qr, on_stored)[0]


def submit_once(
    context: Context, qr: Resource, on_stored: OnStored | None = None,
    set_per_attempt: Collection[str] = (),
) -> tuple[Resource, bool]:
    """Validate a response, then store it, its Observations and their outbox rows atomically.

    Returns (the stored response, whether it was created now). A response whose identifier
    is already stored for the same patient is not stored again: the same response again (a
    client's retry, also one that raced the first copy) returns the stored one, a different
    one under that identifier is a 409 Conflict. Identifiers are unique per patient: the same
    identifier for another patient is another response. `set_per_attempt` names elements the
    caller sets anew on each attempt (the form page's `authored`), left out of that comparison.
    `on_stored` is told every resource written (the response, its Observations, plan
    versions) inside the transaction, so that what it writes (the audit trail) commits with
    them.

    The writes are buffered and sent in one statement per table at the end: a submission
    reads nothing it wrote (plan forms excepted, see record). On SQLite the one writer lock
    is then taken only when the patient's earlier scores are read (Scorer.observations), not
    while the response is validated and scored.
    """
    questionnaire = validated(context.catalogue, qr)
    token = _client_identifier(qr)
    qr = as_new(qr)
    try:
        return _store_once(context, qr, questionnaire, token, on_stored, set_per_attempt)
    except Conflict:
        if token is None:
            raise
        # A concurrent copy under the same key committed between our search and our insert
        # (the unique key refused ours): answer as a retry after it would be answered.
        with context.store.transaction() as conn:
            existing = _already_stored(conn, qr, token, set_per_attempt)
        if existing is None:
            raise
        return existing, False


def _store_once(context: Context, qr: Resource, questionnaire: Questionnaire,
                token: str | None, on_stored: OnStored | None,
                ignored: Collection[str]) -> tuple[Resource, bool]:
    # The unique business key stops two concurrent copies; the search finds any stored one.
    key = _business_key(_patient(qr), token) if token else None
    try:
        with context.store.transaction() as conn:
            if token and (existing := _already_stored(conn, qr, token, ignored)) is not None:
                return existing, False
            with buffered_inserts(conn):
                stored = record(conn, context, qr, questionnaire, business_key=key)
                if on_stored is not None:
                    on_stored(conn, stored)
    except PlanError as exc:
        raise Unprocessable("the plan cannot be recorded", [
            Issue(str(exc), code="business-rule", expression=(exc.link_id,))]) from None
    except PreconditionFailed:
        raise Conflict("a concurrent request changed the same plan; submit again") from None
    return qr, True


def extract_only(
    store: Store,
    catalogue: Catalogue,
    scorer: Scorer,
    qr: Resource,
    questionnaire: Questionnaire | None = None,
) -> Resource:
    """SDC $extract: the Observations as a transaction Bundle; nothing is stored."""
    questionnaire = validated(catalogue, qr, questionnaire)
    if qr.get("status") not in ("completed", "amended"):
        raise Unprocessable(
            "only a completed response can be extracted",
            [Issue("status must be completed or amended for $extract", code="business-rule",
                   expression=("QuestionnaireResponse.status",))],
        )
    resources: list[Resource] = []
    if qr.get("id"):
        ref = {"reference": f"QuestionnaireResponse/{qr['id']}"}
    else:
        # A response the server has never seen: the Bundle creates it too, so that every
        # Observation can be derivedFrom it (US Core requires the link).
        qr = {**qr, "id": new_id()}
        ref = {"reference": f"QuestionnaireResponse/{qr['id']}"}
        resources.append(qr)
    with store.transaction() as conn:
        extraction: Extraction | None = scorer.observations(conn, qr, questionnaire, ref)
    if extraction is None:
        return transaction_bundle([])
    return transaction_bundle(resources + extraction.resources())
