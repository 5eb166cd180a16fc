"""The psychometric data file: citations, override merge and error messages."""

import json
from pathlib import Path

import pytest

from mit_fhir.psychometrics.parameters import (
    DEFAULT_FILE,
    ParameterFileError,
    load_parameters,
)
from mit_fhir.psychometrics.reliable_change import Direction, Method, ParameterError

DATA = json.loads(DEFAULT_FILE.read_text(encoding="utf-8"))
SCORES = [
    (instrument_id, link_id, score)
    for instrument_id, instrument in DATA["instruments"].items()
    for link_id, score in instrument["scores"].items()
]


@pytest.mark.parametrize(
    ("instrument_id", "link_id", "score"), SCORES, ids=[link for _, link, _ in SCORES]
)
def test_every_number_has_a_citation(instrument_id, link_id, score):
    for key, entry in score.items():
        if key in {"direction", "cutoff_type", "default_method", "note"}:
            continue
        assert isinstance(entry, dict), f"{link_id}.{key} is a bare value"
        assert isinstance(entry["value"], int | float)
        assert entry["citation"].strip(), f"{link_id}.{key} has no citation"
        if entry.get("verified") is False:
            assert entry.get("note"), f"{link_id}.{key} is unverified without a note"


def test_link_ids_follow_the_convention():
    for instrument_id, link_id, _ in SCORES:
        assert link_id.startswith(f"{instrument_id}-")


def test_required_scores_are_present():
    params = load_parameters()
    for instrument_id, link_id in [
        ("ders", "ders-total"),
        ("ders-16", "ders-16-total"),
        ("scl-90-r", "scl-90-r-gsi"),
        ("bsl-23", "bsl-23-mean"),
        ("phq-9", "phq-9-total"),
        ("gad-7", "gad-7-total"),
        ("mas-a", "mas-a-total"),
    ]:
        assert params.get(instrument_id, link_id).link_id == link_id
    assert params.get("mas-a").direction is Direction.HIGHER_IS_BETTER
    assert params.default_score("scl-90-r") == "scl-90-r-gsi"


def test_typed_values_keep_their_provenance():
    score = load_parameters().get("ders", "ders-total")
    assert score.default_method is Method.JACOBSON_TRUAX
    assert score.values["reliability"].value == 0.93
    assert "Gratz & Roemer 2004" in score.values["reliability"].citation
    assert score.values["clinical_sd"].verified is True  # read in its source table
    assert score.values["functional_sd"].verified is False  # recalled: flagged until read


def test_score_without_enough_numbers_says_so():
    with pytest.raises(ParameterError, match="mas-a/mas-a-total: reliable change needs"):
        load_parameters().get("mas-a").to_parameters()


def test_unknown_instrument_and_score():
    params = load_parameters()
    with pytest.raises(ParameterError, match="instrument 'nope'"):
        params.get("nope")
    with pytest.raises(ParameterError, match="score 'ders-x' of 'ders'"):
        params.get("ders", "ders-x")


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "site.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def test_override_merges_field_by_field(tmp_path):
    site = {
        "instruments": {
            "ders": {
                "scores": {
                    "ders-total": {
                        "reliability": {
                            "value": 0.9,
                            "citation": "Site sample 2024, internal report",
                        },
                    }
                }
            },
            "core-om": {
                "default_score": "core-om-mean",
                "scores": {
                    "core-om-mean": {
                        "direction": "lower-is-better",
                        "critical_difference": {"value": 0.5, "citation": "Site convention"},
                    }
                },
            },
        }
    }
    params = load_parameters(write(tmp_path, site))
    ders = params.get("ders", "ders-total")
    assert ders.values["reliability"].value == 0.9
    assert ders.values["reliability"].citation == "Site sample 2024, internal report"
    assert ders.values["functional_mean"].value == 77.99  # untouched fields stay
    assert ders.direction is Direction.LOWER_IS_BETTER
    assert params.get("core-om").to_parameters().critical_difference == 0.5
    assert load_parameters().get("ders", "ders-total").values["reliability"].value == 0.93


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"instruments": {"ders": {"scores": {"ders-total": {"reliability": {"value": 0.9}}}}}},
            "instruments.ders.scores.ders-total.reliability.citation: Missing data",
        ),
        (
            {
                "instruments": {
                    "ders": {
                        "scores": {"ders-total": {"reliability": {"value": 1.2, "citation": "x"}}}
                    }
                }
            },
            "instruments.ders.scores.ders-total.reliability: must be in \\(0, 1\\)",
        ),
        (
            {
                "instruments": {
                    "ders": {"scores": {"ders-total": {"sd": {"value": 0, "citation": "x"}}}}
                }
            },
            "instruments.ders.scores.ders-total.sd: must be greater than 0",
        ),
        (
            {"instruments": {"ders": {"scores": {"ders-total": {"relability": 0.9}}}}},
            "instruments.ders.scores.ders-total.relability: Unknown field",
        ),
        (
            {"instruments": {"ders": {"scores": {"ders-total": {"direction": "down"}}}}},
            "instruments.ders.scores.ders-total.direction: Must be one of",
        ),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_override_names_the_key(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ParameterFileError, match=message) as info:
        load_parameters(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ParameterFileError, match="cannot be read"):
        load_parameters(tmp_path / "absent.json")


def test_bad_base_file(tmp_path):
    base = write(tmp_path, {"instruments": {"x": {"default_score": "x-y", "scores": {}}}})
    with pytest.raises(ParameterFileError, match=r"instruments\.x\.default_score: names no score"):
        load_parameters(base=base)
