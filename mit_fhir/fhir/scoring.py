"""Scores of a QuestionnaireResponse, driven only by its Questionnaire's weights and expressions.

A `ScoringPlan` is built once per Questionnaire: its root variables and every calculated item
(`sdc-questionnaire-calculatedExpression`), compiled by mit_fhir.fhir.fhirpath, or left to
fhirpathpy when an expression is outside the compiled subset (a site's own Questionnaire may
use any FHIRPath). An empty result means the score cannot be computed; the item's `score-rule`
extension says why.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fhirpathpy
from fhirpathpy.models import models

from mit_fhir.fhir import fhirpath
from mit_fhir.fhir.items import walk_items
from mit_fhir.fhir.weights import AnswerWeights, FormWeights
from mit_fhir.vocabulary import (
    EXT_CALCULATED_EXPRESSION,
    EXT_OBSERVATION_EXTRACT,
    EXT_QUESTIONNAIRE_UNIT,
    EXT_SCORE_RULE,
    EXT_VARIABLE,
    extension,
)

Resource = dict[str, Any]
Evaluator = Callable[[Resource, dict[str, list[Any]], AnswerWeights], list[Any]]
# The name other modules know the form's weight table by.
Weights = FormWeights
# %name or %`name`: the variables an expression reads.
_READS = re.compile(r"%(?:`([^`]+)`|([A-Za-z_][A-Za-z0-9_]*))")
NO_WEIGHT = "no answer this score is computed from has a weight in the Questionnaire"


@dataclass(frozen=True)
class Variable:
    """An SDC `variable`: its name, FHIRPath text and compiled evaluator."""

    name: str
    text: str
    run: Evaluator


def _expression(element: dict[str, Any], url: str) -> dict[str, Any] | None:
    ext = extension(element, url)
    expr = ext.get("valueExpression") if ext else None
    if expr and expr.get("language") == "text/fhirpath" and expr.get("expression"):
        return dict(expr)
    return None


def reference_evaluate(
    qr: Resource, text: str, variables: dict[str, list[Any]],
    weights: FormWeights | AnswerWeights,
) -> list[Any]:
    """Evaluate with fhirpathpy (R4 model) and SDC's weight() / ordinal() registered."""
    lookup = weights.for_response(qr) if isinstance(weights, FormWeights) else weights

    def weight(inputs: list[Any]) -> list[Any]:
        return lookup(list(inputs))

    table = {name: {"fn": weight, "arity": {0: []}} for name in ("weight", "ordinal")}
    try:
        result = fhirpathpy.evaluate(
            qr,
            text,
            {"resource": qr, "context": qr, **variables},
            model=models["r4"],
            options={"userInvocationTable": table,
                     "traceFn": lambda _label, _value: None},  # trace() logs patient data
        )
    except Exception as exc:  # fhirpathpy raises bare exceptions for type errors
        raise fhirpath.EvaluationError(f"{type(exc).__name__} in fhirpathpy") from None
    return [_plain(v) for v in result]


def _plain(v: Any) -> Any:
    # fhirpathpy answers decimals as decimal.Decimal and may wrap resource values.
    data = getattr(v, "data", v)
    if type(data).__name__ == "Decimal":
        return float(data)
    if type(data).__name__ == "FP_Quantity":  # pragma: no cover - not produced by our forms
        return float(data.value)
    return data


def _runner(text: str) -> Evaluator:
    """The fast compiled evaluator when the subset covers the expression, else fhirpathpy."""
    try:
        compiled = fhirpath.compile_expression(text)
    except fhirpath.Unsupported:
        return lambda qr, variables, weights: reference_evaluate(qr, text, variables, weights)

    def run(qr: Resource, variables: dict[str, list[Any]], weights: AnswerWeights) -> list[Any]:
        env = fhirpath.Env(
            variables={"resource": [qr], "context": [qr], **variables}, weight=weights)
        return compiled([qr], env)

    return run


@dataclass(frozen=True)
class ScoreItem:
    """A calculated item of the Questionnaire and how its value becomes an Observation."""

    link_id: str
    item: Resource
    expression: str
    run: Evaluator
    extract: bool
    rule: str | None
    # Variables declared on the item and its ancestors, in scope for its expression.
    variables: tuple[Variable, ...] = ()

    @property
    def options(self) -> list[dict[str, Any]]:
        return [o["valueCoding"] for o in self.item.get("answerOption", ()) if "valueCoding" in o]

    @property
    def unit(self) -> dict[str, Any] | None:
        ext = extension(self.item, EXT_QUESTIONNAIRE_UNIT)
        return ext.get("valueCoding") if ext else None


@dataclass(frozen=True)
class Score:
    """One computed value (number, band code or boolean), or None with the reason."""

    item: ScoreItem
    value: Any
    reason: str | None = None


def _variables(element: dict[str, Any]) -> list[Variable]:
    out = []
    for ext in element.get("extension", ()):
        expr = ext.get("valueExpression") if ext.get("url") == EXT_VARIABLE else None
        if expr and expr.get("language") == "text/fhirpath" and expr.get("name"):
            out.append(Variable(expr["name"], expr["expression"], _runner(expr["expression"])))
    return out


def _declares_extract(item: dict[str, Any]) -> bool:
    return extension(item, EXT_OBSERVATION_EXTRACT) is not None


def _extract_flag(element: dict[str, Any]) -> bool | None:
    ext = extension(element, EXT_OBSERVATION_EXTRACT)
    if ext is None:
        return None
    if "valueBoolean" in ext:
        return bool(ext["valueBoolean"])
    return ext.get("valueCode") in ("member", "component", "independent", "derived")


class ScoringPlan:
    """The compiled scoring of one Questionnaire."""

    def __init__(self, questionnaire: Resource) -> None:
        self.questionnaire = questionnaire
        self.weights = FormWeights(questionnaire)
        self.variables = _variables(questionnaire)
        self.scores: list[ScoreItem] = []
        self._collect(questionnaire.get("item", []), (), _extract_flag(questionnaire))
        if not any(_declares_extract(i) for i in walk_items(questionnaire.get("item", []))) and (
            _extract_flag(questionnaire) is None
        ):
            # A Questionnaire that marks nothing for extraction (LHC-Forms' LOINC panels, many
            # site forms) still has coded scores a clinician wants charted: extract those.
            self.scores = [
                ScoreItem(**{**s.__dict__, "extract": bool(s.item.get("code"))})
                for s in self.scores
            ]

    def _collect(
        self,
        items: list[Resource],
        scope: tuple[Variable, ...],
        inherited: bool | None,
    ) -> None:
        for item in items:
            local = scope + tuple(_variables(item))
            flag = _extract_flag(item)
            extract = flag if flag is not None else inherited
            expr = _expression(item, EXT_CALCULATED_EXPRESSION)
            if expr is not None:
                rule = extension(item, EXT_SCORE_RULE)
                self.scores.append(
                    ScoreItem(
                        link_id=item["linkId"],
                        item=item,
                        expression=expr["expression"],
                        run=_runner(expr["expression"]),
                        extract=bool(extract),
                        rule=rule.get("valueString") if rule else None,
                        variables=local,
                    )
                )
            self._collect(item.get("item", []), local, extract)

    def evaluate(self, qr: Resource, reference: bool = False) -> list[Score]:
        """Every calculated item's value for this response, in Questionnaire order.

        `reference=True` evaluates the same expressions with fhirpathpy instead of the compiled
        evaluator (tests and benchmarks compare the two). A score whose expression, with the
        variables it reads, called weight() and got no weight at all is absent (NO_WEIGHT):
        FHIRPath's sum() of nothing is 0, and a 0 charted from no weights would read as "no
        symptoms". An answer without a weight is otherwise a missing answer: weight() leaves
        it out, and the form's own missing-item rule decides (every catalogue score requires
        all its items, so a partially weighted set gives no catalogue score either).
        """
        lookup = self.weights.for_response(qr)
        # name -> (weight() calls, weights found) of that variable and what it reads.
        usage: dict[str, tuple[int, int]] = {}

        def run(text: str, compiled: Evaluator, variables: dict[str, list[Any]],
                name: str | None = None) -> tuple[list[Any], tuple[int, int]]:
            calls, found = lookup.calls, lookup.found
            if reference:
                result = reference_evaluate(qr, text, variables, lookup)
            else:
                result = compiled(qr, variables, lookup)
            used = (lookup.calls - calls, lookup.found - found)
            for read in _reads(text):
                c, f = usage.get(read, (0, 0))
                used = (used[0] + c, used[1] + f)
            if name is not None:
                usage[name] = used
            return result, used

        # %questionnaire is the form itself, as LHC-Forms and SDC's examples provide it.
        root: dict[str, list[Any]] = {"questionnaire": [self.questionnaire]}
        out: list[Score] = []
        try:
            for var in self.variables:
                root[var.name] = run(var.text, var.run, root, var.name)[0]
        except fhirpath.EvaluationError as exc:
            return [Score(s, None, f"a variable failed: {exc}") for s in self.scores]
        shared = dict(usage)
        for score in self.scores:
            variables = root
            usage.clear()
            usage.update(shared)
            try:
                if score.variables:
                    variables = dict(root)
                    for var in score.variables:
                        variables[var.name] = run(var.text, var.run, variables, var.name)[0]
                result, (calls, found) = run(score.expression, score.run, variables)
            except fhirpath.EvaluationError as exc:
                out.append(Score(score, None, f"the score expression failed: {exc}"))
                continue
            if not result:
                out.append(Score(score, None, score.rule or "not enough answers to compute"))
            elif calls and not found:
                out.append(Score(score, None, NO_WEIGHT))
            elif len(result) > 1:
                out.append(Score(score, None, "the score expression gave several values"))
            else:
                out.append(Score(score, result[0]))
        return out


@functools.lru_cache(maxsize=4096)
def _reads(text: str) -> frozenset[str]:
    """The %variables an expression reads (by name; a variable in scope shadows an outer one)."""
    return frozenset(quoted or plain for quoted, plain in _READS.findall(text))
