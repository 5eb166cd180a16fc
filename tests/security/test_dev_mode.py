"""Development mode (MIT_FHIR_AUTH=none) is for loopback only; audit failures hide no read."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from flask import Flask

from mit_fhir.cli import main


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_serve_refuses_to_bind_beyond_loopback_without_auth(host: str, database_url: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--host", host, "--port", "1"],
                                env={"MIT_FHIR_DATABASE_URL": database_url,
                                     "MIT_FHIR_AUTH": "none"})
    assert result.exit_code != 0
    assert "loopback only" in result.output


def test_serve_without_auth_settings_names_what_is_missing(database_url: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--port", "1"],
                                env={"MIT_FHIR_DATABASE_URL": database_url,
                                     "MIT_FHIR_AUTH": "jwt"})
    assert result.exit_code != 0
    assert "MIT_FHIR_AUTH_ISSUER: required" in result.output


def test_a_read_that_cannot_be_audited_is_not_answered(app: Flask, monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    from mit_fhir.security import audit

    api = app.test_client()
    assert api.get("/fhir/Observation?patient=Patient/p1").status_code == 200

    def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(audit, "insert", broken)
    resp = api.get("/fhir/Observation?patient=Patient/p1")
    assert resp.status_code == 503
    assert resp.get_json()["issue"][0]["code"] == "transient"
    assert "entry" not in resp.get_json()
    assert api.get("/fhir/Questionnaire/phq-9").status_code == 200  # not patient data
