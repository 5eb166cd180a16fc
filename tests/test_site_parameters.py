"""A site's own psychometric parameters (MIT_FHIR_PSYCHOMETRICS_FILE) change the verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mit_fhir.app import create_app
from mit_fhir.cli import main
from mit_fhir.config import ConfigError
from tests.conftest import FHIR_JSON, fresh_database_url, sample


def ders_end_category(app: Any) -> str:
    client = app.test_client()
    for name, when in (("case-intake", "2019-03-04"), ("case-end", "2020-09-07")):
        qr = {**sample("ders", name), "authored": when, "subject": {"reference": "Patient/a"}}
        assert client.post("/fhir/QuestionnaireResponse", data=json.dumps(qr),
                           content_type=FHIR_JSON).status_code == 201
    bundle = client.get("/fhir/Observation?patient=a&code=ders-total&_sort=-date").json
    parts = bundle["entry"][0]["resource"]["extension"][0]["extension"]
    code: str = next(p for p in parts if p["url"] == "category")["valueCoding"]["code"]
    return code


def test_a_site_cutoff_turns_recovered_into_improved(tmp_path: Path, database_url: str) -> None:
    # A site whose local functional norms put the cutoff below 57: the same reliable drop no
    # longer crosses into the functional range.
    override = {"instruments": {"ders": {"scores": {"ders-total": {
        "cutoff_type": "b",
        "functional_mean": {"value": 40.0, "citation": "site norms, test fixture"},
        "functional_sd": {"value": 5.0, "citation": "site norms, test fixture"},
    }}}}}
    path = tmp_path / "site.json"
    path.write_text(json.dumps(override))
    default = create_app({"DATABASE_URL": database_url})
    site = create_app({"DATABASE_URL": fresh_database_url(tmp_path, "b"),
                       "PSYCHOMETRICS_FILE": str(path)})
    try:
        assert ders_end_category(default) == "recovered"
        assert ders_end_category(site) == "improved"
    finally:
        for app in (default, site):
            app.extensions["mit_fhir"].store.dispose()


def test_a_broken_site_file_stops_start_up_with_the_key_named(
    tmp_path: Path, database_url: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"instruments": {"ders": {"scores": {"ders-total": {
        "reliability": {"value": 1.5, "citation": "x"}}}}}}))
    with pytest.raises(ConfigError, match=r"MIT_FHIR_PSYCHOMETRICS_FILE.*reliability"):
        create_app({"DATABASE_URL": database_url,
                    "PSYCHOMETRICS_FILE": str(path)})


def test_reliable_change_is_a_mit_fhir_command(tmp_path: Path) -> None:
    csv = tmp_path / "cohort.csv"
    csv.write_text("id,pre,post\n1,118,57\n2,110,108\n")
    result = CliRunner().invoke(main, ["reliable-change", str(csv), "--instrument", "ders",
                                       "--pre-column", "pre", "--post-column", "post",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)["summary"]
    assert summary["recovered"] == 1 and summary["unchanged"] == 1
