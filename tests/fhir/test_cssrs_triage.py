"""The C-SSRS screener triage with answers missing: the level the given answers already reach,
none only while an unanswered question could still change it (attacker finding F3)."""

from __future__ import annotations

import itertools

import pytest

from mit_fhir.fhir.scoring import ScoringPlan
from tests.conftest import ROOT, load_json

CSSRS = load_json(ROOT / "mit_fhir" / "questionnaires" / "cssrs-screener.json")
PLAN = ScoringPlan(CSSRS)
QUESTIONS = ("1", "2", "3", "4", "5", "6", "6b")
YES = {"system": "http://loinc.org", "code": "LA33-6"}
NO = {"system": "http://loinc.org", "code": "LA32-8"}
# Least to most severe: the answerOption order of the triage item.
ORDER = ["cssrs-triage-none", "LA9194-7", "LA6751-7", "LA9193-9"]
MODERATE = "LA6751-7"
State = dict[str, int | None]


def triage(state: State) -> str | None:
    """The service's triage code for yes (1) / no (0) / unanswered (None) per question."""
    qr = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": [
        {"linkId": f"cssrs-screener-{k}", "answer": [{"valueCoding": YES if v else NO}]}
        for k, v in state.items() if v is not None]}
    value = next(s.value for s in PLAN.evaluate(qr) if s.item.link_id == "cssrs-screener-triage")
    return str(value["code"]) if isinstance(value, dict) else None


def enabled(state: State) -> bool:
    """Follow-ups answered only where the screener asks them (Q3-5 after Q2 yes, 6b after 6 yes)."""
    return ((state["2"] == 1 or all(state[k] is None for k in "345"))
            and (state["6"] == 1 or state["6b"] is None))


def grid(values: tuple[int | None, ...]) -> list[State]:
    return [dict(zip(QUESTIONS, combo, strict=True))
            for combo in itertools.product(values, repeat=len(QUESTIONS))]


def complete() -> list[State]:
    """Every fully answered screener: each question it asks answered, the others skipped."""
    out = []
    for s in grid((0, 1)):
        full: State = {k: None if (k in "345" and not s["2"]) or (k == "6b" and not s["6"])
                       else v for k, v in s.items()}
        if full not in out:
            out.append(full)
    return out


COMPLETE = complete()


def completions(state: State) -> set[str | None]:
    """The triage of every fully answered screener that agrees with `state`'s answers."""
    return {triage(full) for full in COMPLETE
            if all(v is None or full[k] == v for k, v in state.items())}


PARTIAL = [s for s in grid((None, 0, 1)) if enabled(s) and s not in COMPLETE]


def test_a_complete_screener_has_a_level() -> None:
    assert len(COMPLETE) == 2 * (1 + 2 * 2 * 2) * (1 + 2)  # Q1; Q2 no or yes+3-5; Q6 no or yes+6b
    assert {triage(s) for s in COMPLETE} == set(ORDER)


@pytest.mark.parametrize("state", PARTIAL, ids=["".join("-01"[0 if v is None else v + 1]
                                                        for v in s.values()) for s in PARTIAL])
def test_a_partial_screener_reports_what_its_answers_already_decide(state: State) -> None:
    possible = completions(state)
    got = triage(state)
    if len(possible) == 1:
        assert got == possible.pop()  # nothing unanswered could change it
    elif min(possible, key=ORDER.index) == MODERATE:
        # At least moderate (behaviour of unknown recency, or Q3 yes with Q4/5 unanswered): the
        # warning stands while the missing answer could only raise it to high.
        assert got == MODERATE
    else:
        assert got is None, f"{got} although the unanswered questions could give {possible}"


def test_intent_with_q5_unanswered_is_high() -> None:
    assert triage({"1": 1, "2": 1, "3": 1, "4": 1, "5": None, "6": 0, "6b": None}) == "LA9193-9"


def test_behaviour_of_unknown_recency_is_at_least_moderate() -> None:
    assert triage({"1": 0, "2": 0, "3": None, "4": None, "5": None, "6": 1, "6b": None}) == MODERATE


def test_an_unanswered_screener_has_no_level() -> None:
    assert triage(dict.fromkeys(QUESTIONS)) is None
    assert triage({"1": 1, "2": 0, "3": None, "4": None, "5": None, "6": None, "6b": None}) is None


def test_partial_states_are_many() -> None:
    assert len(PARTIAL) > 300  # the grid above is the whole space, not a hand-picked few
