"""The bands as LHC-Forms (fhirpath.js) computes them in Debian's chromium, for every sample
response with a band: the same answerOption Coding the service extracts (issue 13)."""

from __future__ import annotations

from typing import Any

import pytest

from mit_fhir.fhir.items import walk_items
from mit_fhir.fhir.scoring import ScoringPlan
from mit_fhir.ui.presentation import for_renderer
from tests.conftest import ROOT, SAMPLES, load_json

VENDOR = ROOT / "mit_fhir" / "ui" / "static" / "vendor"
SCRIPTS = ("lforms/webcomponent/assets/lib/zone.min.js", "lforms/webcomponent/lhc-forms.js",
           "lforms/fhir/R4/lformsFHIR.min.js")


def band_cases(undetermined: bool = False) -> list[tuple[str, str, str, str]]:
    """(questionnaire id, sample, band linkId, expected code) of every sample with a band, or
    with `undetermined` of every sample whose band is expected empty (code "")."""
    cases = []
    for path in sorted((ROOT / "mit_fhir" / "questionnaires").glob("*.json")):
        q = load_json(path)
        bands = [i["linkId"] for i in walk_items(q.get("item", []))
                 if i.get("type") == "choice" and i.get("readOnly")]
        for expected in sorted((SAMPLES / q["id"]).glob("*.expected.json")):
            values = load_json(expected)
            for link_id in bands:
                if (values.get(link_id) is None) == undetermined and link_id in values:
                    cases.append((q["id"], expected.name.removesuffix(".expected.json"),
                                  link_id, values[link_id] or ""))
    return cases


CASES = band_cases()
EMPTY = band_cases(undetermined=True)


def rendered_answers(page: Any, questionnaire: dict[str, Any], qr: dict[str, Any]
                     ) -> dict[str, Any]:
    """The response LHC-Forms gives back after loading `qr` into the page's form copy."""
    page.set_content('<!doctype html><html lang="en"><body><div id="form"></div></body></html>')
    for script in SCRIPTS:
        page.add_script_tag(path=str(VENDOR / script))
    out: dict[str, Any] = page.evaluate(
        """async ([q, qr]) => {
             const el = document.getElementById('form');
             await LForms.Util.addFormToPage(q, el, {questionnaireResponse: qr,
                                                     prepopulate: false});
             return LForms.Util.getFormFHIRData('QuestionnaireResponse', 'R4', el);
           }""", [for_renderer(questionnaire, grid=False), qr])  # flat, as the samples are
    return {i["linkId"]: i.get("answer") for i in walk_items(out.get("item", []))}


def test_every_band_of_the_catalogue_has_a_sample() -> None:
    banded = {qid for qid, *_ in CASES}
    assert banded == {"phq-9", "gad-7", "bsl-23", "bpd-criteria", "cssrs-screener"}


@pytest.mark.parametrize(("qid", "sample", "link_id", "code"), CASES,
                         ids=[f"{c[0]}/{c[1]}" for c in CASES])
def test_lhc_forms_shows_the_band_the_service_extracts(page: Any, qid: str, sample: str,
                                                        link_id: str, code: str) -> None:
    questionnaire = load_json(ROOT / "mit_fhir" / "questionnaires" / f"{qid}.json")
    qr = load_json(SAMPLES / qid / f"{sample}.json")
    answers = rendered_answers(page, questionnaire, qr)
    service = next(s.value for s in ScoringPlan(questionnaire).evaluate(qr)
                   if s.item.link_id == link_id)
    # A band LHC-Forms cannot match to an option (a bare code string) leaves the item empty.
    assert answers.get(link_id) == [{"valueCoding": service}]
    assert service["code"] == code


@pytest.mark.parametrize(("qid", "sample", "link_id", "code"), EMPTY,
                         ids=[f"{c[0]}/{c[1]}" for c in EMPTY])
def test_lhc_forms_leaves_empty_the_band_the_service_cannot_decide(
        page: Any, qid: str, sample: str, link_id: str, code: str) -> None:
    questionnaire = load_json(ROOT / "mit_fhir" / "questionnaires" / f"{qid}.json")
    qr = load_json(SAMPLES / qid / f"{sample}.json")
    assert code == ""
    assert rendered_answers(page, questionnaire, qr).get(link_id) is None
    assert next(s.value for s in ScoringPlan(questionnaire).evaluate(qr)
                if s.item.link_id == link_id) is None
