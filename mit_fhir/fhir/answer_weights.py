"""Responses built from answer weights: a score's range, and answers that give a chosen total."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mit_fhir.fhir.items import walk_items
from mit_fhir.fhir.scoring import ScoringPlan
from mit_fhir.fhir.weights import FormWeights

Resource = dict[str, Any]


@dataclass(frozen=True)
class WeightedItem:
    """A choice item whose options carry weights: (weight, coding) sorted by weight."""

    link_id: str
    options: tuple[tuple[float, Resource], ...]

    def option(self, weight: float) -> Resource:
        """The coding of the first option with this weight (KeyError if none)."""
        for w, coding in self.options:
            if w == weight:
                return coding
        raise KeyError(weight)


def weighted_items(questionnaire: Resource) -> list[WeightedItem]:
    """The Questionnaire's items with weighted coded options, in form order."""
    weights = FormWeights(questionnaire)
    found = []
    for item in walk_items(questionnaire.get("item", [])):
        options = []
        for opt in item.get("answerOption", ()):
            coding = opt.get("valueCoding")
            if coding and (w := weights(item["linkId"], coding)) is not None:
                plain = {k: coding[k] for k in ("system", "code", "display") if k in coding}
                options.append((w, plain))
        if options:
            found.append(WeightedItem(item["linkId"], tuple(sorted(options, key=lambda o: o[0]))))
    return found


def response(questionnaire: Resource, answers: dict[str, Resource]) -> Resource:
    """A completed QuestionnaireResponse (no subject, no date) answering items by coding."""
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
        "status": "completed",
        "item": [{"linkId": link_id, "answer": [{"valueCoding": dict(coding)}]}
                 for link_id, coding in answers.items()],
    }


def score_range(questionnaire: Resource, plan: ScoringPlan, link_id: str
                ) -> tuple[float, float] | None:
    """The lowest and highest value a numeric score can take, found by answering every weighted
    item with its lowest, then its highest weight (sums, means and counts are monotonic in the
    weights); None when the score is not numeric or not computed from weights alone."""
    items = weighted_items(questionnaire)
    if not items:
        return None
    values = []
    for pick in (0, -1):
        qr = response(questionnaire, {i.link_id: i.options[pick][1] for i in items})
        value = next((s.value for s in plan.evaluate(qr) if s.item.link_id == link_id), None)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        values.append(float(value))
    return min(values), max(values)


def answers_for_total(items: list[WeightedItem], total: float) -> dict[str, Resource]:
    """Codings for `items` whose weights add up to exactly `total`, spread as evenly as the
    options allow (the demo patient's licensed instruments are computed from such answers).

    Raises ValueError when no combination of the weights gives the total."""
    if not items:
        raise ValueError("no weighted items")
    levels = [sorted({w for w, _ in i.options}) for i in items]
    chosen = [lv[0] for lv in levels]
    remaining = total - sum(chosen)
    if remaining < 0:
        raise ValueError(f"{total} is below the lowest possible total {sum(chosen)}")
    # Raise the items one step at a time, round robin, so answers stay close to each other.
    raised = True
    while remaining > 1e-9 and raised:
        raised = False
        for n, lv in enumerate(levels):
            pos = lv.index(chosen[n])
            if pos + 1 < len(lv) and lv[pos + 1] - chosen[n] <= remaining + 1e-9:
                remaining -= lv[pos + 1] - chosen[n]
                chosen[n] = lv[pos + 1]
                raised = True
                if remaining <= 1e-9:
                    break
    if abs(remaining) > 1e-9:
        raise ValueError(f"no combination of the answer weights adds up to {total}")
    return {item.link_id: item.option(w) for item, w in zip(items, chosen, strict=True)}
