"""The one reference grammar (mit_fhir/fhir/references.py): what it accepts and what it refuses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mit_fhir.errors import InvalidRequest
from mit_fhir.fhir.references import BadReference, Reference, is_fhir_id, parse, patient_id

BASE = "https://mit.example.org/fhir"
PATIENT = ("Patient",)


@pytest.mark.parametrize(("text", "types", "expected"), [
    ("Patient/B", PATIENT, Reference("Patient", "B")),
    ("B", PATIENT, Reference("Patient", "B")),  # bare id: the parameter's type is fixed
    (f"{BASE}/Patient/B", PATIENT, Reference("Patient", "B")),
    (f"{BASE}/Patient/B", None, Reference("Patient", "B")),
    ("Observation/o-1.2", None, Reference("Observation", "o-1.2")),
    ("QuestionnaireResponse/" + "x" * 64, None, Reference("QuestionnaireResponse", "x" * 64)),
])
def test_accepted(text: str, types: tuple[str, ...] | None, expected: Reference) -> None:
    assert parse(text, types, BASE) == expected


@pytest.mark.parametrize("text", [
    "", "Patient/", "/B", "Patient//B", "Patient/B/",
    "Patient/A%3F/Patient/B", "Patient/A%2FPatient/B", "Patient%2FB", "Patient%252FB",
    "Patient/A?/Patient/B", "Patient/A?x", "Patient/A#", "Patient/A#/Patient/B",
    "Patient/A/../B", "Patient/../B", "./Patient/B", "Patient/./B", "Patient/..", "Patient/.",
    "..", ".",
    "patient/B", "PATIENT/B", "Group/B",
    "Patient/B\n", "Patient/B\r", "Patient/ B", " Patient/B", "Patient/B\t", "Patient\t/B",
    "Patient/B\x00", "Patient\uff0fB", "Patient/\u0412", "P\u0430tient/B",  # U+FF0F, Cyrillic
    "Patient/B/_history/1", "Patient/A,Patient/B", "Patient\\B",
    "https://other.example.org/fhir/Patient/B", "http://mit.example.org/fhir/Patient/B",
    f"{BASE}Patient/B", f"{BASE}//Patient/B", f"{BASE}/../Patient/B", f"{BASE.upper()}/Patient/B",
    "//mit.example.org/fhir/Patient/B", "urn:uuid:Patient/B",
    "Patient/" + "x" * 65, "x" * 600,
])
def test_refused(text: str) -> None:
    with pytest.raises(BadReference) as info:
        parse(text, PATIENT, BASE)
    assert isinstance(info.value, InvalidRequest) and info.value.status == 400


@pytest.mark.parametrize("text", ["Patient/secret-42?x", "https://x.org/Patient/secret-42",
                                  "Patient/secret-42/_history/1", "Group/secret-42"])
def test_messages_quote_no_input(text: str) -> None:
    with pytest.raises(BadReference) as info:
        parse(text, PATIENT, BASE)
    assert "secret" not in info.value.message


def test_a_bare_id_needs_a_fixed_type() -> None:
    with pytest.raises(BadReference):
        parse("B", None, BASE)
    with pytest.raises(BadReference):
        parse("B", ("Patient", "Group"), BASE)


def test_absolute_urls_need_the_base() -> None:
    with pytest.raises(BadReference):
        parse(f"{BASE}/Patient/B", PATIENT)


@pytest.mark.parametrize(("text", "expected"), [
    ("Patient/1", "1"), ("Patient/a-b.c", "a-b.c"),
    ("1", None), ("https://ehr.example.org/fhir/Patient/a-b", None),  # relative only
    ("Patient/1/_history/2", None), ("Group/1", None), ("Patient/", None), ("Patient/1\n", None),
    (None, None), (["Patient/1"], None), ({"reference": "Patient/1"}, None),
])
def test_patient_id(text: object, expected: str | None) -> None:
    assert patient_id(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("a", True), ("A-1.b", True), ("x" * 64, True), ("x" * 65, False), ("", False),
    ("a\n", False), ("a b", False), ("a_b", False), (".", False), ("..", False), (7, False),
    (["a"], False), (None, False),
])
def test_is_fhir_id(text: object, expected: bool) -> None:
    assert is_fhir_id(text) is expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_whatever_parses_prints_back_to_itself(text: str) -> None:
    # The guard passes the canonical form on to the search, which parses it again: a fixed
    # point, so both always name the same resource.
    try:
        ref = parse(text, None, BASE)
    except BadReference:
        return
    assert parse(str(ref)) == ref
    assert text in (str(ref), f"{BASE}/{ref}")
