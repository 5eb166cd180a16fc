"""_count parsing and the search cursor: every malformed, altered, stale or foreign cursor is a
400 (InvalidRequest), never another exception."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mit_fhir.errors import InvalidRequest
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.fhir.paging import (
    CURSOR_SECONDS,
    Position,
    decode_cursor,
    encode_cursor,
    page_size,
    search_digest,
)

NOW = 1_800_000_000.0
DIGEST = search_digest("Observation", [Criterion("patient", "eq", ("Patient/a",))], "date")
POSITION = Position("2026-01-01T00:00:00", "obs-1")


@pytest.mark.parametrize(("values", "expected"), [
    ([], 50), (["1"], 1), (["50"], 50), (["500"], 500), (["007"], 7),
])
def test_count_in_range_is_the_page_size(values: list[str], expected: int) -> None:
    assert page_size(values, 50, 500) == expected


@pytest.mark.parametrize("value", [
    "abc", "", " ", " 1", "1 ", "\t7", "0", "-1", "501", "1000000", "1.5", "1e3", "+5",
    "0x10", "5,6",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: int() would accept it
    "9" * 40,
])
def test_count_not_a_whole_number_in_range_is_refused(value: str) -> None:
    with pytest.raises(InvalidRequest, match="_count"):
        page_size([value], 50, 500)


def test_count_given_twice_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="once"):
        page_size(["10", "20"], 50, 500)


def test_a_cursor_resumes_the_search_it_was_issued_for() -> None:
    cursor = encode_cursor(DIGEST, POSITION, now=NOW)
    assert decode_cursor([cursor], DIGEST, now=NOW + 5) == POSITION
    assert decode_cursor([], DIGEST, now=NOW) is None


@pytest.mark.parametrize(("criteria", "sort"), [
    ([Criterion("patient", "eq", ("Patient/b",))], "date"),  # another patient
    ([Criterion("patient", "eq", ("Patient/a",))], "-date"),  # another order
    ([Criterion("patient", "eq", ("Patient/a",)), Criterion("status", "eq", ("final",))],
     "date"),  # a narrower search
    ([], "date"),  # a wider one (a user token without the patient)
])
def test_a_cursor_of_another_search_is_refused(criteria: list[Criterion], sort: str) -> None:
    cursor = encode_cursor(DIGEST, POSITION, now=NOW)
    with pytest.raises(InvalidRequest, match="another search"):
        decode_cursor([cursor], search_digest("Observation", criteria, sort), now=NOW)


@pytest.mark.parametrize("age", [CURSOR_SECONDS + 1, -3600])
def test_a_stale_or_future_cursor_is_refused(age: int) -> None:
    cursor = encode_cursor(DIGEST, POSITION, now=NOW)
    with pytest.raises(InvalidRequest, match="expired"):
        decode_cursor([cursor], DIGEST, now=NOW + age)


def _forge(**changes: object) -> str:
    payload = {"v": 1, "q": DIGEST, "k": POSITION.sort_value, "i": POSITION.id, "t": int(NOW),
               **changes}
    payload = {k: v for k, v in payload.items() if v is not ...}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "xyz", "!!!!", "a" * 600, "eyJ2IjoxfQ",  # {"v":1}
    base64.urlsafe_b64encode(b"[1,2,3]").decode(),
    base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="),
    _forge(v=2), _forge(i="../Patient/b"), _forge(i=""), _forge(i=7), _forge(k=None),
    _forge(k="x" * 41), _forge(t="soon"), _forge(t=True), _forge(t=1.5), _forge(q=None),
    _forge(extra="x"), _forge(t=...), _forge(t=10**30),
])
def test_a_forged_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidRequest, match="_cursor"):
        decode_cursor([cursor], DIGEST, now=NOW)


def test_two_cursors_are_refused() -> None:
    cursor = encode_cursor(DIGEST, POSITION, now=NOW)
    with pytest.raises(InvalidRequest, match="once"):
        decode_cursor([cursor, cursor], DIGEST, now=NOW)


@given(st.text(max_size=300) | st.binary(max_size=200).map(
    lambda b: base64.urlsafe_b64encode(b).decode()))
def test_any_text_is_a_position_or_a_400(text: str) -> None:
    try:
        decode_cursor([text], DIGEST, now=NOW)
    except InvalidRequest:
        pass


@given(st.integers(min_value=0, max_value=len(encode_cursor(DIGEST, POSITION, now=NOW)) - 1),
       st.sampled_from("ABCxyz019-_"))
def test_an_altered_cursor_is_a_position_of_this_search_or_a_400(index: int, char: str) -> None:
    cursor = encode_cursor(DIGEST, POSITION, now=NOW)
    altered = cursor[:index] + char + cursor[index + 1:]
    try:
        found = decode_cursor([altered], DIGEST, now=NOW)
    except InvalidRequest:
        return
    # Validated, not signed: what survives names a position inside this same search only.
    assert isinstance(found, Position)
