"""Search parameter parsing: dates of every precision, tokens and references."""

from __future__ import annotations

import pytest

from mit_fhir.errors import InvalidRequest
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.fhir.search import criteria as parse
from mit_fhir.fhir.search import (
    date_key,
    date_range,
    reference_rows,
    sort_key,
    token_rows,
)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2024", "2024-01-01T00:00:00", "2024-12-31T23:59:59"),
        ("2024-02", "2024-02-01T00:00:00", "2024-02-29T23:59:59"),
        ("2023-02", "2023-02-01T00:00:00", "2023-02-28T23:59:59"),
        ("2024-12", "2024-12-01T00:00:00", "2024-12-31T23:59:59"),
        ("2024-03-01", "2024-03-01T00:00:00", "2024-03-01T23:59:59"),
        ("2024-12-31", "2024-12-31T00:00:00", "2024-12-31T23:59:59"),
        ("2024-03-01T10:15", "2024-03-01T10:15:00", "2024-03-01T10:15:59"),
        ("2024-03-01T10:15Z", "2024-03-01T10:15:00", "2024-03-01T10:15:59"),
        ("2024-03-01T10:15:30", "2024-03-01T10:15:30", "2024-03-01T10:15:30"),
        ("2024-03-01T10:15:30Z", "2024-03-01T10:15:30", "2024-03-01T10:15:30"),
        ("2024-03-01T10:15:30.250Z", "2024-03-01T10:15:30", "2024-03-01T10:15:30"),
        ("2024-03-01T10:15:30+01:00", "2024-03-01T09:15:30", "2024-03-01T09:15:30"),
        ("2024-03-01T00:30:00+05:30", "2024-02-29T19:00:00", "2024-02-29T19:00:00"),
        ("2024-12-31T23:00:00-02:00", "2025-01-01T01:00:00", "2025-01-01T01:00:00"),
        ("2024-03-01T10:15:30+00:00", "2024-03-01T10:15:30", "2024-03-01T10:15:30"),
    ],
)
def test_date_range(text: str, start: str, end: str) -> None:
    assert date_range(text) == (start, end)


@pytest.mark.parametrize(
    "text", ["", "24", "2024-1", "2024-13", "2024-02-30", "2024-03-01T10", "yesterday",
             "2024-03-01 10:00:00", "2024-03-01T10:00:00+0100"]
)
def test_date_range_refuses_what_is_not_a_date(text: str) -> None:
    with pytest.raises(ValueError):
        date_range(text)


@pytest.mark.parametrize(
    ("text", "key"),
    [("2024-03-01T10:00:00+01:00", "2024-03-01T09:00:00"), ("2024", "2024-01-01T00:00:00"),
     (None, None), ("", None), ("garbage", None)],
)
def test_date_key(text: str | None, key: str | None) -> None:
    assert date_key(text) == key


QR = "QuestionnaireResponse"
OBS = "Observation"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024", Criterion("authored", "between", ("2024-01-01T00:00:00", "2024-12-31T23:59:59"))),
        ("eq2024-03", Criterion("authored", "between",
                                ("2024-03-01T00:00:00", "2024-03-31T23:59:59"))),
        ("ge2024-03-01", Criterion("authored", "ge", ("2024-03-01T00:00:00",))),
        ("gt2024-03-01", Criterion("authored", "gt", ("2024-03-01T23:59:59",))),
        ("le2024-03", Criterion("authored", "le", ("2024-03-31T23:59:59",))),
        ("lt2024", Criterion("authored", "lt", ("2024-01-01T00:00:00",))),
        ("sa2024", Criterion("authored", "gt", ("2024-12-31T23:59:59",))),
        ("eb2024", Criterion("authored", "lt", ("2024-01-01T00:00:00",))),
        ("ge2024-03-01T10:00:00+01:00", Criterion("authored", "ge", ("2024-03-01T09:00:00",))),
        ("2023,2024-06", Criterion("authored", "between", (
            "2023-01-01T00:00:00", "2023-12-31T23:59:59",
            "2024-06-01T00:00:00", "2024-06-30T23:59:59"))),
    ],
)
def test_date_criteria(value: str, expected: Criterion) -> None:
    assert parse(QR, [("authored", value)]) == [expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("completed", Criterion("status:code", "eq", ("completed",))),
        ("completed,amended", Criterion("status:code", "eq", ("completed", "amended"))),
        ("http://hl7.org/fhir/questionnaire-answers-status|completed",
         Criterion("status", "eq", ("http://hl7.org/fhir/questionnaire-answers-status|completed",))),
        ("|completed", Criterion("status", "eq", ("|completed",))),
        ("http://hl7.org/fhir/questionnaire-answers-status|",
         Criterion("status", "like-prefix", ("http://hl7.org/fhir/questionnaire-answers-status|",))),
        # Raw here: the repository escapes LIKE wildcards (see test_wildcards_are_literal).
        ("http://x.org/a_b%|", Criterion("status", "like-prefix", ("http://x.org/a_b%|",))),
    ],
)
def test_token_criteria(value: str, expected: Criterion) -> None:
    assert parse(QR, [("status", value)]) == [expected]


def test_observation_code_token_forms() -> None:
    assert parse(OBS, [("code", "http://loinc.org|44261-6")]) == [
        Criterion("code", "eq", ("http://loinc.org|44261-6",))
    ]
    assert parse(OBS, [("code", "44261-6")]) == [Criterion("code:code", "eq", ("44261-6",))]
    assert parse(OBS, [("code", "http://loinc.org|")]) == [
        Criterion("code", "like-prefix", ("http://loinc.org|",))
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Patient/123", Criterion("subject", "eq", ("Patient/123",))),
        ("123", Criterion("subject", "eq", ("Patient/123",))),  # subject's type is fixed
        ("Patient/1,Patient/2", Criterion("subject", "eq", ("Patient/1", "Patient/2"))),
        ("1,2", Criterion("subject", "eq", ("Patient/1", "Patient/2"))),
        ("Patient/1,2", Criterion("subject", "eq", ("Patient/1", "Patient/2"))),
    ],
)
def test_reference_criteria(value: str, expected: Criterion) -> None:
    assert parse(QR, [("subject", value)]) == [expected]


def test_canonical_criteria_drop_the_version() -> None:
    assert parse(QR, [("questionnaire", "https://mit-fhir.org/fhir/Questionnaire/phq-9|1.0.0")]) \
        == [Criterion("questionnaire", "eq", ("https://mit-fhir.org/fhir/Questionnaire/phq-9",))]


def test_repeated_parameters_are_and_ed() -> None:
    got = parse(QR, [("authored", "ge2024"), ("authored", "lt2025"), ("_sort", "date"),
                     ("_count", "10")])
    assert got == [Criterion("authored", "ge", ("2024-01-01T00:00:00",)),
                   Criterion("authored", "lt", ("2025-01-01T00:00:00",))]


@pytest.mark.parametrize(
    ("name", "value", "mentioned"),
    [
        ("foo", "1", "foo"),
        ("subject:Patient", "1", "subject:Patient"),
        ("code", "x", "code"),  # an Observation parameter, not a QuestionnaireResponse one
        ("authored", "ne2024", "authored"),
        ("authored", "ap2024", "authored"),
        ("authored", "2024-13-01", "authored"),
        ("authored", ",", "authored"),
        ("subject", "Patient/123/", "subject"),  # references are matched whole
        ("subject", "https://ehr.example.org/fhir/Patient/123", "subject"),  # another base
        ("subject", "a_b%c", "subject"),
        ("subject", "Group/1", "subject"),
        ("status", "completed,http://x|amended", "status"),
    ],
)
def test_unsupported_criteria_are_a_400(name: str, value: str, mentioned: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(QR, [(name, value)])
    assert info.value.status == 400
    assert any(mentioned in i.diagnostics for i in info.value.issues)


def test_every_bad_parameter_is_reported() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(QR, [("foo", "1"), ("bar", "2"), ("subject", "Patient/1")])
    assert len(info.value.issues) == 2


@pytest.mark.parametrize("value", [None, "date", "-date"])
def test_sort_key(value: str | None) -> None:
    assert sort_key({} if value is None else {"_sort": value}) == value


@pytest.mark.parametrize("value", ["authored", "", "date,-date"])
def test_sort_key_refuses_others(value: str) -> None:
    with pytest.raises(InvalidRequest):
        sort_key({"_sort": value})


@pytest.mark.parametrize("value", ["1", "Patient/1/_history/2", "QuestionnaireResponse/a b"])
def test_derived_from_takes_only_type_and_id(value: str) -> None:
    # derived-from has no fixed target type, so a bare id names nothing (it used to match any
    # reference ending in /1, of any type).
    with pytest.raises(InvalidRequest) as info:
        parse(OBS, [("derived-from", value)])
    assert info.value.status == 400


def test_reference_rows() -> None:
    assert reference_rows("subject", {"reference": "Patient/1"}) == [("subject", "Patient/1")]
    # Another server's URL gets no row: indexing its last segments as Patient/1 would let a
    # search for our Patient/1 find it.
    assert reference_rows("subject", {"reference": "https://x.org/fhir/Patient/1"}) == []
    assert reference_rows("subject", {"reference": "Patient/A?/Patient/1"}) == []
    assert reference_rows("subject", {"display": "no reference"}) == []
    assert reference_rows("subject", None) == []


def test_token_rows() -> None:
    concept = {"coding": [{"system": "http://loinc.org", "code": "44261-6"}, {"code": "local"},
                          {"system": "http://x.org"}]}
    assert token_rows("code", concept) == [
        ("code", "http://loinc.org|44261-6"), ("code:code", "44261-6"),
        ("code", "|local"), ("code:code", "local"),
    ]
