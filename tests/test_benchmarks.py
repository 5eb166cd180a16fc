"""Smoke tests of the benchmarks (benchmarks/): each runs on a tiny size and measures what it says.

These are not timed tests: `make bench` gives the figures. They check that the scoring benchmark
compares the engines (and would notice a difference), and that the HTTP benchmark's load
generators send valid, varied responses that the service stores.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import fhirpathpy
import orjson
import pytest
from fhirpathpy.models import models
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from benchmarks import bench_http, bench_scoring
from benchmarks.load import body, constant_rate, template
from mit_fhir.fhir.scoring import ScoringPlan
from mit_fhir.paths import QUESTIONNAIRE_DIR
from mit_fhir.store.schema import resource
from tests.conftest import database_kind, drop_database, fresh_database_url, sample

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None,
                               reason="wrk is missing: `make bench-deps` installs it")


def test_scoring_covers_every_catalogue_form_with_expressions() -> None:
    assert bench_scoring.scored_instruments() == [
        "bpd-criteria", "bsl-23", "cssrs-screener", "ders", "ders-16", "gad-7", "mas-a", "phq-9",
        "scl-90-r"]


def test_scoring_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    figures = bench_scoring.run(repeat=3, reference_repeat=1, instruments=["phq-9", "gad-7"])
    assert figures["checked"] == 12  # 2 scores x 3 samples each
    assert figures["ratio"] > 1
    out = capsys.readouterr().out
    assert "phq-9" in out and "gad-7" in out and "overall ratio" in out


def test_scoring_benchmark_refuses_different_results() -> None:
    q = orjson.loads((QUESTIONNAIRE_DIR / "phq-9.json").read_bytes())
    plan = ScoringPlan(q)
    reference = bench_scoring.FhirpathpyScorer(plan)
    assert bench_scoring.check_identical("phq-9", plan, reference) == 6
    link_id, local, _ = reference.scores[0]
    reference.scores[0] = (link_id, local, fhirpathpy.compile("1000", models["r4"]))
    with pytest.raises(AssertionError, match="phq-9"):
        bench_scoring.check_identical("phq-9", plan, reference)


def test_bodies_vary_identifier_patient_and_time() -> None:
    text = template(sample("phq-9"))
    first = orjson.loads(body(text, 0, 3, "x"))
    fourth = orjson.loads(body(text, 4, 3, "x"))
    assert first["identifier"]["value"] == "x-0" and fourth["identifier"]["value"] == "x-4"
    assert (first["subject"], fourth["subject"]) == (
        {"reference": "Patient/bench-0"}, {"reference": "Patient/bench-1"})
    assert (first["authored"], fourth["authored"]) == ("2020-01-01T00:00:00Z",
                                                       "2020-01-01T00:04:00Z")
    assert first["item"] == sample("phq-9")["item"]


@needs_wrk
def test_wrk_and_the_constant_rate_generator_post_what_the_service_stores(
    tmp_path: Path,
) -> None:
    url = fresh_database_url(tmp_path, "bench")
    text = template(sample("phq-9"))
    (tmp_path / "template.json").write_text(text)
    server = bench_http.start_service(url, tmp_path / "service.log")
    try:
        target = f"{server.base}/fhir/QuestionnaireResponse"
        peak = bench_http.wrk(target, tmp_path / "template.json", 1, 2, "smoke")
        rated = constant_rate(target, text, 10, 1, bench_http.POOL, "rate")
    finally:
        server.stop()
    assert peak.rps > 0 and peak.errors == 0
    assert (rated.sent, rated.failed) == (10, 0) and 0 < rated.p50 <= rated.p99
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            stored = [orjson.loads(c) for (c,) in conn.execute(
                select(resource.c.content).where(
                    resource.c.resource_type == "QuestionnaireResponse"))]
    finally:
        engine.dispose()
        drop_database(url)
    # wrk counts only answered requests; a request cut off at its deadline may still be stored.
    assert peak.rps * 0.5 <= len(stored) - 10
    identifiers = [qr["identifier"]["value"] for qr in stored]
    assert len(set(identifiers)) == len(stored)
    assert {i.split("-")[0] for i in identifiers} == {"smoke", "rate"}
    subjects = {qr["subject"]["reference"] for qr in stored}
    assert len(subjects) > 10


@needs_wrk
def test_http_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    figures = bench_http.run(seconds=1, database=database_kind(), connections=(2,))
    assert figures["service_rps"] > 0 and figures["bare_rps"] > 0
    assert figures["errors"] == 0
    assert 0 < figures["service_p50"] <= figures["service_p99"]
    out = capsys.readouterr().out
    assert "ratio service/bare" in out and "p99" in out
