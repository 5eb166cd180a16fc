"""Scoring every catalogue instrument: the compiled FHIRPath subset against fhirpathpy.

Goal (issue 7, benchmark 2): the service's scorer at least 10x faster than fhirpathpy evaluating
the same `variable` and `calculatedExpression` FHIRPath, with identical results. Every
Questionnaire in questionnaires/ that has a calculatedExpression is scored. The reference is
fhirpathpy at its best: each expression parsed once (`fhirpathpy.compile`, as the service
compiles once per Questionnaire), R4 model, SDC's weight() registered as a user function; the
service's own fallback (`ScoringPlan.evaluate(reference=True)`, which parses on every call) is
printed too, for scale. Before timing, both engines score every sample response of the
instrument (tests/data/samples/<id>/*.json) and must give the same value for every score.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fhirpathpy
import orjson
from fhirpathpy.models import models

from benchmarks.timing import median_seconds, ms
from mit_fhir.fhir.scoring import ScoringPlan, _plain
from mit_fhir.paths import QUESTIONNAIRE_DIR
from mit_fhir.vocabulary import EXT_CALCULATED_EXPRESSION

ROOT = Path(__file__).resolve().parent.parent
GOAL = 10.0
Resource = dict[str, Any]


class FhirpathpyScorer:
    """A plan's expressions compiled once by fhirpathpy: the reference the scorer is timed against.

    Variables are evaluated in the same order and scope as ScoringPlan.evaluate (root variables,
    then each score's own); a score's value is its single result, else None.
    """

    def __init__(self, plan: ScoringPlan) -> None:
        self.plan = plan
        self._lookup = plan.weights.for_response({})
        table = {"weight": {"fn": self._weight, "arity": {0: []}}}

        def compiled(text: str) -> Callable[[Resource, dict[str, Any]], list[Any]]:
            return fhirpathpy.compile(text, models["r4"], {"userInvocationTable": table})

        self.root = [(v.name, compiled(v.text)) for v in plan.variables]
        self.scores = [
            (s.link_id, [(v.name, compiled(v.text)) for v in s.variables],
             compiled(s.expression))
            for s in plan.scores
        ]

    def _weight(self, inputs: list[Any]) -> list[float]:
        return self._lookup(list(inputs))

    def evaluate(self, qr: Resource) -> list[tuple[str, Any]]:
        self._lookup = self.plan.weights.for_response(qr)

        def run(fn: Callable[[Resource, dict[str, Any]], list[Any]],
                variables: dict[str, Any]) -> list[Any]:
            return [_plain(v) for v in fn(qr, {"resource": qr, "context": qr, **variables})]

        root: dict[str, Any] = {"questionnaire": [self.plan.questionnaire]}
        for name, fn in self.root:
            root[name] = run(fn, root)
        out = []
        for link_id, local, fn in self.scores:
            variables = dict(root) if local else root
            for name, var_fn in local:
                variables[name] = run(var_fn, variables)
            result = run(fn, variables)
            out.append((link_id, result[0] if len(result) == 1 else None))
        return out


def scored_instruments() -> list[str]:
    """Every catalogue Questionnaire id that has at least one calculatedExpression."""
    return sorted(
        p.stem for p in QUESTIONNAIRE_DIR.glob("*.json")
        if EXT_CALCULATED_EXPRESSION.encode() in p.read_bytes()
    )


def _same(a: Any, b: Any) -> bool:
    # fhirpathpy computes in Decimal, the scorer in float: means may differ in the last bit.
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return bool(type(a) is type(b) and a == b)


def check_identical(qid: str, plan: ScoringPlan, reference: FhirpathpyScorer) -> int:
    """Score every sample of the instrument with both engines; raise on any difference."""
    checked = 0
    for path in sorted((ROOT / "tests" / "data" / "samples" / qid).glob("*.json")):
        if path.name.endswith(".expected.json"):
            continue
        qr = orjson.loads(path.read_bytes())
        ours = [(s.item.link_id, s.value) for s in plan.evaluate(qr)]
        theirs = reference.evaluate(qr)
        assert [k for k, _ in ours] == [k for k, _ in theirs], f"{qid}: different scores"
        for (link_id, a), (_, b) in zip(ours, theirs, strict=True):
            assert _same(a, b), f"{qid} {path.name} {link_id}: scorer {a!r} != fhirpathpy {b!r}"
            checked += 1
    return checked


@dataclass(frozen=True)
class InstrumentTiming:
    """Medians (seconds) for one instrument's complete sample, and the scores compared."""

    scores: int
    checked: int
    scorer: float
    fhirpathpy: float
    parse_per_call: float


def time_instrument(qid: str, repeat: int, reference_repeat: int) -> InstrumentTiming:
    """Check both engines agree on every sample, then time the complete one with each."""
    questionnaire = orjson.loads((QUESTIONNAIRE_DIR / f"{qid}.json").read_bytes())
    qr = orjson.loads((ROOT / "tests" / "data" / "samples" / qid / "complete.json").read_bytes())
    plan = ScoringPlan(questionnaire)
    reference = FhirpathpyScorer(plan)
    checked = check_identical(qid, plan, reference)
    return InstrumentTiming(
        scores=len(plan.scores),
        checked=checked,
        scorer=median_seconds(lambda: plan.evaluate(qr), repeat, warmup=max(1, repeat // 10)),
        fhirpathpy=median_seconds(lambda: reference.evaluate(qr), reference_repeat, warmup=1),
        parse_per_call=median_seconds(lambda: plan.evaluate(qr, reference=True),
                                      reference_repeat, warmup=1),
    )


def run(repeat: int = 200, reference_repeat: int = 5,
        instruments: list[str] | None = None) -> dict[str, float]:
    """Time each instrument's complete sample; print medians and ratios; return the figures."""
    print(f"benchmark 2 - scoring every catalogue instrument vs fhirpathpy (goal: >= {GOAL:g}x, "
          "identical results)")
    print(f"  {'instrument':<16}{'scores':>7}{'checked':>9}{'scorer':>13}{'fhirpathpy':>14}"
          f"{'ratio':>9}{'parse/call':>14}")
    timings: dict[str, InstrumentTiming] = {}
    for qid in instruments or scored_instruments():
        t = timings[qid] = time_instrument(qid, repeat, reference_repeat)
        print(f"  {qid:<16}{t.scores:>7}{t.checked:>9}{ms(t.scorer):>13}{ms(t.fhirpathpy):>14}"
              f"{t.fhirpathpy / t.scorer:>8.0f}x{ms(t.parse_per_call):>14}")
    ratios = {qid: t.fhirpathpy / t.scorer for qid, t in timings.items()}
    scorer = sum(t.scorer for t in timings.values())
    reference = sum(t.fhirpathpy for t in timings.values())
    per_call = sum(t.parse_per_call for t in timings.values())
    overall = reference / scorer
    worst = min(ratios, key=ratios.__getitem__)
    print(f"  all instruments (sum of medians): scorer {ms(scorer)}, fhirpathpy compiled once "
          f"{ms(reference)}, parsed per call {ms(per_call)}")
    print(f"  overall ratio {overall:.0f}x, geometric mean "
          f"{statistics.geometric_mean(ratios.values()):.0f}x, lowest {ratios[worst]:.0f}x "
          f"({worst})  ({'met' if ratios[worst] >= GOAL else 'MISSED'})")
    return {"scorer": scorer, "fhirpathpy": reference, "ratio": overall,
            "lowest": ratios[worst], "checked": sum(t.checked for t in timings.values())}


if __name__ == "__main__":
    run()
