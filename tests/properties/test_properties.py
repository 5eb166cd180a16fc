"""Properties of generated responses: valid ones extract within range; malformed ones are refused.

Example counts are bounded (EXAMPLES per form) and the examples are derandomised, so the suite
is fast and repeatable; `HYPOTHESIS_PROFILE`-style tuning is not needed for `make test`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mit_fhir.fhir.scoring import ScoringPlan
from mit_fhir.paths import PROFILE_DIR, QUESTIONNAIRE_DIR
from mit_fhir.psychometrics import reliable_change as rc
from mit_fhir.psychometrics.parameters import load_parameters
from mit_fhir.usecases.catalogue import Catalogue
from tests.conftest import FHIR_JSON, drop_database, fresh_database_url, stored_counts
from tests.properties.ranges import Range, score_ranges
from tests.properties.strategies import mutated, responses
from tests.resilience.live import build_app

EXAMPLES = 30
BOUNDED = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))
CATALOGUE = Catalogue.from_directory(QUESTIONNAIRE_DIR)
FORMS = sorted(CATALOGUE.by_id)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app for the module, syncing enabled so the outbox is written (and counted) too."""
    url = fresh_database_url(tmp_path_factory.mktemp("properties"), "properties")
    application = build_app(url, EHR_BASE_URL="http://127.0.0.1:9/fhir")
    yield application
    application.extensions["mit_fhir"].store.dispose()
    drop_database(url)


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, path: str, body: Any) -> Any:
    return client.post(path, data=json.dumps(body), content_type=FHIR_JSON)


@pytest.mark.parametrize("qid", FORMS)
def test_any_valid_response_extracts_and_its_scores_stay_in_range(
    qid: str, client: FlaskClient
) -> None:
    questionnaire = CATALOGUE.by_id[qid]
    plan = ScoringPlan(questionnaire)
    ranges = score_ranges(questionnaire)
    # A band is the Coding of one of its item's own answer options (what LHC-Forms can show).
    bands = {i.link_id: [o["valueCoding"] for o in i.item.get("answerOption", [])]
             for i in plan.scores if i.item["type"] == "choice"}

    @BOUNDED
    @given(qr=responses(questionnaire))
    def check(qr: dict[str, Any]) -> None:
        resp = post(client, "/fhir/QuestionnaireResponse/$extract", qr)
        assert resp.status_code == 200, resp.get_json()
        bundle = resp.get_json()
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
        scores = {s.item.link_id: s.value for s in plan.evaluate(qr) if s.value is not None}
        for link_id, value in scores.items():
            if link_id in ranges:
                assert value in ranges[link_id], (qid, link_id, value, ranges[link_id])
            elif bands.get(link_id):
                assert value in bands[link_id], (qid, link_id, value)
        extracted = [e["resource"]["valueQuantity"]["value"] for e in bundle["entry"]
                     if "valueQuantity" in e["resource"]]
        numeric = [v for k, v in scores.items() if k in ranges]
        assert sorted(extracted) == pytest.approx(sorted(numeric)), qid

    check()


def _scored_forms() -> list[tuple[str, str, Range]]:
    params = load_parameters(None, PROFILE_DIR / "psychometrics.json")
    out = []
    for qid in params.instruments():
        for link_id, bounds in score_ranges(CATALOGUE.by_id[qid]).items():
            try:
                params.get(qid, link_id).to_parameters()
            except rc.ParameterError:
                continue  # no reliability/SD nor published difference: no index at all
            out.append((qid, link_id, bounds))
    return out


@pytest.mark.parametrize(("qid", "link_id", "bounds"), _scored_forms())
def test_the_reliable_change_index_changes_sign_when_pre_and_post_swap(
    qid: str, link_id: str, bounds: Range
) -> None:
    params = load_parameters(None, PROFILE_DIR / "psychometrics.json").get(qid, link_id)
    rcp = params.to_parameters()
    value = st.floats(bounds.low, bounds.high, allow_nan=False)

    @BOUNDED
    @given(pre=value, post=value)
    def check(pre: float, post: float) -> None:
        # Jacobson-Truax (every score's index and the published critical differences); the
        # regression-based methods are not antisymmetric by design.
        forward = rc.rci(pre, post, rcp, rc.Method.JACOBSON_TRUAX)
        backward = rc.rci(post, pre, rcp, rc.Method.JACOBSON_TRUAX)
        if pre == post:
            assert forward == backward == 0
            return
        assert math.copysign(1, forward) == -math.copysign(1, backward)
        assert (forward > 0) == (post > pre)
        if not rcp.uses_published_difference:
            assert forward == pytest.approx(-backward)

    check()


@pytest.mark.parametrize("qid", FORMS)
def test_a_malformed_response_is_refused_whole_and_stores_nothing(
    qid: str, app: Flask, client: FlaskClient
) -> None:
    questionnaire = CATALOGUE.by_id[qid]

    @BOUNDED
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        valid = data.draw(responses(questionnaire))
        kind, bad = data.draw(mutated(questionnaire, valid))
        before = stored_counts(app)
        resp = post(client, "/fhir/QuestionnaireResponse", bad)
        assert 400 <= resp.status_code < 500, (qid, kind, resp.status_code)
        assert resp.mimetype == FHIR_JSON
        outcome = resp.get_json()
        assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"], (qid, kind)
        assert stored_counts(app) == before, (qid, kind)

    check()


def test_a_valid_response_is_stored_with_rows_counted(app: Flask, client: FlaskClient) -> None:
    # The counter the malformed-response property relies on does see a stored submission.
    qr = json.loads((Path(__file__).parents[1] / "data/samples/phq-9/complete.json").read_text())
    before = stored_counts(app)
    assert post(client, "/fhir/QuestionnaireResponse", qr).status_code == 201
    after = stored_counts(app)
    assert all(after[name] > before[name] for name in before), (before, after)
