"""Accepting a QuestionnaireResponse: validate it against its form, then store it atomically."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from mit_fhir.catalogue import Catalogue, Questionnaire
from mit_fhir.errors import Issue, Unprocessable
from mit_fhir.fhir.search import Row, date_key, reference_rows
from mit_fhir.fhir.validate import check_against, check_structure
from mit_fhir.store.repository import Store, insert, new_id

Resource = dict[str, Any]


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


def validated(catalogue: Catalogue, qr: Resource) -> tuple[Resource, Questionnaire]:
    """A structurally valid response that fits its Questionnaire, with that Questionnaire."""
    check_structure(qr, QuestionnaireResponse)
    questionnaire = questionnaire_for(catalogue, qr)
    check_against(qr, questionnaire)
    return qr, questionnaire


def response_index(qr: Resource) -> list[Row]:
    """Search index rows of a QuestionnaireResponse."""
    rows = reference_rows("subject", qr.get("subject"))
    rows += [("patient", v) for _, v in rows if v.startswith("Patient/")]
    rows.append(("questionnaire", qr["questionnaire"].partition("|")[0]))
    if qr.get("status"):
        rows.append(("status:code", qr["status"]))
    if (authored := date_key(qr.get("authored"))) is not None:
        rows.append(("authored", authored))
    rows.append(("_id", qr["id"]))
    return rows


def submit(store: Store, catalogue: Catalogue, qr: Resource) -> Resource:
    """Validate and store a response in one transaction; the server assigns the id."""
    qr, _questionnaire = validated(catalogue, qr)
    qr = {k: v for k, v in qr.items() if k not in ("id", "meta")}
    qr["id"] = new_id()
    with store.transaction() as conn:
        insert(conn, qr, response_index(qr), sort_date=date_key(qr.get("authored")))
    return qr
