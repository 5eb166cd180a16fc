"""Extraction of a complete SCL-90-R response vs fhir.resources parsing the same response.

Goal (issue "Scores and reliable change"): extraction / parse <= 1.5. Both sides start from
the same JSON bytes: extraction parses them with orjson, scores the 12 SCL-90-R scores and
builds the 13 Observations; the reference parses them into the R4B model (parse + dump is
printed too).
"""

from __future__ import annotations

from pathlib import Path

import orjson
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from benchmarks.timing import median_seconds, ms
from mit_fhir.fhir.extract import extract
from mit_fhir.fhir.scoring import ScoringPlan
from mit_fhir.paths import QUESTIONNAIRE_DIR

ROOT = Path(__file__).resolve().parent.parent


def run() -> dict[str, float]:
    questionnaire = orjson.loads((QUESTIONNAIRE_DIR / "scl-90-r.json").read_bytes())
    body = (ROOT / "tests" / "data" / "samples" / "scl-90-r" / "complete.json").read_bytes()
    plan = ScoringPlan(questionnaire)  # compiled once per Questionnaire, as the service does
    ref = {"reference": "QuestionnaireResponse/bench"}

    def extraction() -> object:
        return extract(orjson.loads(body), questionnaire, plan, ref)

    def parse() -> object:
        return QuestionnaireResponse.model_validate_json(body)

    def parse_dump() -> object:
        return QuestionnaireResponse.model_validate_json(body).model_dump(exclude_none=True)

    def score_only() -> object:
        return plan.evaluate(orjson.loads(body))

    t_extract = median_seconds(extraction)
    t_parse = median_seconds(parse)
    t_parse_dump = median_seconds(parse_dump)
    t_score = median_seconds(score_only)
    ratio = t_extract / t_parse
    print("benchmark 1 - SCL-90-R extraction vs fhir.resources parse (goal: ratio <= 1.5)")
    print(f"  extract (orjson + 12 scores + 13 Observations): median {ms(t_extract)}")
    print(f"    of which scoring alone:                      median {ms(t_score)}")
    print(f"  fhir.resources R4B parse (the reference):      median {ms(t_parse)}")
    print(f"  fhir.resources R4B parse + dump, for scale:    median {ms(t_parse_dump)}")
    print(f"  ratio extract/parse: {ratio:.3f}  ({'met' if ratio <= 1.5 else 'MISSED'})")
    return {"extract": t_extract, "parse": t_parse, "ratio": ratio}


if __name__ == "__main__":
    run()
