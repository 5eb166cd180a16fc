"""SMART scopes, v1 and v2: what each grants, and how patient context narrows it."""

from __future__ import annotations

import pytest

from mit_fhir.security.scopes import Denied, Grant, Principal, parse_scope, parse_scopes


@pytest.mark.parametrize(("scope", "grant"), [
    ("patient/Observation.read", Grant("patient", "Observation", "rs")),
    ("user/*.write", Grant("user", "*", "cud")),
    ("system/*.*", Grant("system", "*", "cruds")),
    ("patient/Observation.rs", Grant("patient", "Observation", "rs")),
    ("user/QuestionnaireResponse.cruds", Grant("user", "QuestionnaireResponse", "cruds")),
    ("system/CarePlan.c", Grant("system", "CarePlan", "c")),
    ("user/Observation.s", Grant("user", "Observation", "s")),
])
def test_scopes_grant_what_the_smart_specification_says(scope: str, grant: Grant) -> None:
    assert parse_scope(scope) == grant


@pytest.mark.parametrize("scope", [
    "openid", "fhirUser", "launch", "launch/patient", "offline_access",
    "patient/Observation.sr",  # v2 letters out of order
    "patient/Observation.rw", "patient/observation.read", "admin/*.read", "patient/*.",
    "user/Observation.rs?category=survey",  # narrowed: not enforced here, so not granted
    "patient/Observation.read extra",
])
def test_other_scopes_grant_nothing(scope: str) -> None:
    assert parse_scope(scope) is None


def test_scope_claims_as_string_or_list() -> None:
    assert parse_scopes("openid user/Observation.rs") == (Grant("user", "Observation", "rs"),)
    assert parse_scopes(["user/*.read", 7, "launch"]) == (Grant("user", "*", "rs"),)
    assert parse_scopes(None) == ()


def _who(scopes: str, patient: str | None = None) -> Principal:
    return Principal("sub", "client", parse_scopes(scopes), patient)


def test_v1_read_allows_read_and_search_but_not_create() -> None:
    who = _who("user/Observation.read")
    who.check("Observation", "r")
    who.check("Observation", "s")
    with pytest.raises(Denied, match=r"Observation\.c"):
        who.check("Observation", "c")
    with pytest.raises(Denied):
        who.check("QuestionnaireResponse", "r")


def test_patient_context_reaches_only_its_patient() -> None:
    who = _who("patient/*.cruds", patient="p1")
    who.check("QuestionnaireResponse", "c", "p1")
    with pytest.raises(Denied, match="patient context"):
        who.check("QuestionnaireResponse", "c", "p2")
    with pytest.raises(Denied, match="patient context"):
        who.check("Observation", "s", None)
    who.check("Questionnaire", "r")  # the catalogue is nobody's data


def test_user_scopes_with_patient_context_still_stop_at_the_patient() -> None:
    who = _who("user/*.cruds", patient="p1")
    with pytest.raises(Denied):
        who.check("Observation", "r", "p2")


def test_patient_scopes_without_context_grant_nothing() -> None:
    with pytest.raises(Denied, match="need patient context"):
        _who("patient/*.cruds").check("Observation", "r", "p1")


def test_development_user_may_do_everything() -> None:
    dev = Principal.development_user()
    for interaction in "cruds":
        dev.check("Observation", interaction, None)


def test_type_check_before_the_patient_is_known() -> None:
    _who("patient/*.cruds", patient="p1").check_type("Observation", "c")
    with pytest.raises(Denied):
        _who("patient/*.cruds").check_type("Observation", "c")
    with pytest.raises(Denied):
        _who("user/Observation.rs").check_type("Observation", "c")
