"""Search-index rows (parameter, value) and sort keys of the resources the service stores."""

from __future__ import annotations

from typing import Any

from mit_fhir.fhir.search import Row, date_key, reference_rows, token_rows

Resource = dict[str, Any]


def _subject_rows(res: Resource) -> list[Row]:
    rows = reference_rows("subject", res.get("subject"))
    return rows + [("patient", v) for _, v in rows if v.startswith("Patient/")]


def response_index(qr: Resource) -> list[Row]:
    """QuestionnaireResponse: subject, patient, questionnaire, authored, status, _id."""
    rows = _subject_rows(qr)
    rows.append(("questionnaire", qr["questionnaire"].partition("|")[0]))
    if qr.get("status"):
        rows.append(("status:code", qr["status"]))
    if (authored := date_key(qr.get("authored"))) is not None:
        rows.append(("authored", authored))
    rows.append(("_id", qr["id"]))
    return rows


def observation_index(obs: Resource) -> list[Row]:
    """Observation: subject, patient, code, date, derived-from, status, _id."""
    rows = _subject_rows(obs)
    rows += token_rows("code", obs.get("code"))
    if (effective := date_key(obs.get("effectiveDateTime"))) is not None:
        rows.append(("date", effective))
    for ref in obs.get("derivedFrom", []):
        rows += reference_rows("derived-from", ref)
    rows.append(("status:code", obs["status"]))
    rows.append(("_id", obs["id"]))
    return rows


def sort_date(res: Resource) -> str | None:
    """The instant `_sort=date` orders by."""
    return date_key(res.get("authored") or res.get("effectiveDateTime"))
