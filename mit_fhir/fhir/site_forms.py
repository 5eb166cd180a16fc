"""A Questionnaire a request brings ($extract): checked structurally, scored within a budget.

Such a form comes from the caller, not from the catalogue, so nothing in it is trusted: it is
validated as R4B before any of it is read (400 naming the element), its critical-answer marks
checked (400 naming the item), and its scoring plan runs
every expression within the request's budget (fhir/budget.py), a breach being a 422 that names
the item. Nothing of it is cached but the compilations of its expressions, by their text.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fhir.resources.R4B.questionnaire import Questionnaire as QuestionnaireModel

from mit_fhir.errors import InvalidRequest, Issue, Unprocessable
from mit_fhir.fhir import alerts, fhirpath
from mit_fhir.fhir.budget import BudgetExceeded, foreign, suspended
from mit_fhir.fhir.scoring import Evaluator, ScoringPlan, Variable
from mit_fhir.fhir.structure import check_structure

# LHC-Forms' own LOINC panels name their variables `q1_value`, which R4's `id` type (that of
# Expression.name) forbids; rejecting the forms sites actually use would help nobody.
TOLERATED = frozenset({("name", "string_pattern_mismatch")})
# Longer expressions are refused before they reach the parser: ANTLR's time grows with their
# length (~140 ms for the 2.4 KB of LHC-Forms' PHQ-9) and cannot be interrupted, so these
# bound a form's compilation (~1 s at most) as the time limit bounds its evaluation.
MAX_EXPRESSION_LENGTH = 4096
MAX_EXPRESSIONS_LENGTH = 16_384


class SiteQuestionnaire(dict[str, Any]):
    """A checked request-supplied Questionnaire (the scorer budgets its plan, caches none)."""


def _long_expressions(resource: dict[str, Any]) -> list[Issue]:
    issues: list[Issue] = []
    total = 0
    stack: list[tuple[Any, str]] = [(resource, "Questionnaire")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node))
        elif isinstance(node, dict):
            text = node.get("expression")
            if isinstance(text, str):
                total += len(text)
                if len(text) > MAX_EXPRESSION_LENGTH:
                    issues.append(Issue(f"an expression is longer than {MAX_EXPRESSION_LENGTH} "
                                        "characters", code="too-long",
                                        expression=(f"{path}.expression",)))
            stack.extend((v, f"{path}.{k}") for k, v in node.items() if isinstance(v, dict | list))
    if total > MAX_EXPRESSIONS_LENGTH and not issues:
        issues.append(Issue(f"the expressions are longer than {MAX_EXPRESSIONS_LENGTH} "
                            "characters in all", code="too-long", expression=("Questionnaire",)))
    return issues


def checked(resource: Any) -> SiteQuestionnaire:
    """The supplied Questionnaire once it is valid R4B FHIR (400 naming the elements if not)."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Questionnaire":
        raise InvalidRequest("parameter 'questionnaire' must be a Questionnaire resource")
    check_structure(resource, QuestionnaireModel, tolerate=TOLERATED)
    if issues := _long_expressions(resource):
        raise InvalidRequest("the supplied Questionnaire is not usable", issues[:20])
    if problems := alerts.mark_problems(resource):
        raise InvalidRequest("the supplied Questionnaire is not usable", [
            Issue(f"item '{link_id}': {problem}", expression=(_item_path(link_id),))
            for link_id, problem in problems[:20]])
    return SiteQuestionnaire(resource)


def _exceeded(exc: BudgetExceeded, where: str, path: str) -> Unprocessable:
    return Unprocessable("an expression of the supplied Questionnaire exceeds its budget",
                         [Issue(f"{where}: {exc.reason}", code="too-costly",
                                expression=(path,))])


def _guard(run: Evaluator, text: str, where: str, path: str) -> Evaluator:
    # The compiled evaluator charges the budget itself; fhirpathpy needs the profile hook.
    compiled = fhirpath.compiles(text)

    def guarded(qr: dict[str, Any], variables: dict[str, list[Any]], weights: Any) -> list[Any]:
        try:
            if compiled:
                return run(qr, variables, weights)
            return foreign(lambda: run(qr, variables, weights))
        except BudgetExceeded as exc:
            raise _exceeded(exc, where, path) from None

    return guarded


def _item_path(link_id: str) -> str:
    return f"Questionnaire.item.where(linkId='{link_id[:64]}')"


def plan_for(questionnaire: SiteQuestionnaire) -> ScoringPlan:
    """The form's scoring plan, every expression guarded by the active budget.

    Compiling runs outside the budget's clock: the length limits in `checked` bound it.
    """
    with suspended():
        plan = ScoringPlan(questionnaire)
    return budgeted(plan)


def budgeted(plan: ScoringPlan) -> ScoringPlan:
    """A copy of the plan whose every expression runs within the active budget.

    Variables of an item are charged to that item: its score cannot be computed without them.
    """
    guarded = object.__new__(ScoringPlan)
    guarded.__dict__.update(plan.__dict__)

    def var(v: Variable, where: str, path: str) -> Variable:
        return dataclasses.replace(v, run=_guard(v.run, v.text, where, path))

    guarded.variables = [var(v, f"variable '{v.name[:64]}'", "Questionnaire.extension")
                      for v in plan.variables]
    guarded.scores = [
        dataclasses.replace(
            s,
            run=_guard(s.run, s.expression, f"item '{s.link_id[:64]}'",
                       _item_path(s.link_id)),
            variables=tuple(var(v, f"item '{s.link_id[:64]}'", _item_path(s.link_id))
                            for v in s.variables),
        )
        for s in plan.scores
    ]
    return guarded
