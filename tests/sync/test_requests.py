"""What the EHR gets for one resource: local references found and rewritten, our meta dropped."""

from __future__ import annotations

import copy

import pytest

from mit_fhir.sync.requests import Unresolved, body, local_target, references

PANEL = {
    "resourceType": "Observation", "id": "panel-1",
    "meta": {"versionId": "3", "lastUpdated": "2024-01-01T00:00:00Z",
             "profile": ["https://example.org/p"]},
    "subject": {"reference": "Patient/p-1"},
    "derivedFrom": [{"reference": "QuestionnaireResponse/qr-1/_history/2"}],
    "hasMember": [{"reference": "Observation/total-1"}, {"reference": "Observation/band-1"}],
    "component": [{"valueQuantity": {"value": 3}}, [{"reference": "CarePlan/plan-1"}]],
    "note": [{"text": "Observation/not-a-reference"}],
}


@pytest.mark.parametrize(("ref", "target"), [
    ("Observation/o-1", "Observation/o-1"),
    ("QuestionnaireResponse/q/_history/4", "QuestionnaireResponse/q"),
    ("Patient/p-1", None),  # not a type we sync: the EHR's own
    ("Observation", None),
    ("urn:uuid:0b0e", None),
    (None, None),
    (7, None),
])
def test_local_target(ref: object, target: str | None) -> None:
    assert local_target(ref) == target


def test_references_are_found_at_any_depth() -> None:
    assert references(PANEL) == {"QuestionnaireResponse/qr-1", "Observation/total-1",
                                 "Observation/band-1", "CarePlan/plan-1"}
    assert references({"resourceType": "Observation", "subject": {"reference": "Patient/p"}}) \
        == frozenset()


def test_body_rewrites_references_and_strips_our_meta() -> None:
    before = copy.deepcopy(PANEL)
    resolve = {"QuestionnaireResponse/qr-1": "QuestionnaireResponse/ehr-9",
               "Observation/total-1": "urn:uuid:t", "Observation/band-1": "Observation/ehr-2",
               "CarePlan/plan-1": "CarePlan/ehr-3"}
    out = body(PANEL, resolve, "ehr-1", references(PANEL))
    assert out["id"] == "ehr-1" and out["meta"] == {"profile": ["https://example.org/p"]}
    assert out["derivedFrom"] == [{"reference": "QuestionnaireResponse/ehr-9"}]
    assert out["hasMember"] == [{"reference": "urn:uuid:t"}, {"reference": "Observation/ehr-2"}]
    assert out["component"][1] == [{"reference": "CarePlan/ehr-3"}]
    assert out["subject"] == {"reference": "Patient/p-1"}
    assert PANEL == before  # the stored resource is never changed
    with pytest.raises(Unresolved):
        body(PANEL, {}, None, references(PANEL))


def test_a_resource_without_local_references_is_sent_as_it_is() -> None:
    score = {"resourceType": "Observation", "id": "s-1", "meta": {"versionId": "1"},
             "subject": {"reference": "Patient/p-1"}, "valueQuantity": {"value": 12}}
    before = copy.deepcopy(score)
    known = body(score, {}, None, references(score))
    assert known == body(score, {}, None) == {
        "resourceType": "Observation", "subject": {"reference": "Patient/p-1"},
        "valueQuantity": {"value": 12}}
    assert score == before
