"""Settings: defaults, MIT_FHIR_* variables, and refusal of anything wrong at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mit_fhir import create_app, paths
from mit_fhir.cli import main
from mit_fhir.config import ConfigError, env_settings, load_settings
from mit_fhir.store.migrate import is_current


def test_defaults_require_an_issuer_unless_development_mode_is_chosen() -> None:
    with pytest.raises(ConfigError, match="MIT_FHIR_AUTH_ISSUER: required when MIT_FHIR_AUTH=jwt"):
        load_settings({})
    settings = load_settings({"AUTH": "none"})
    assert settings["AUTH"] == "none"
    assert settings["DATABASE_URL"] is None
    assert settings["MAX_BODY_BYTES"] == 1_048_576
    assert settings["LOG_LEVEL"] == "INFO"
    assert Path(settings["QUESTIONNAIRE_DIR"]) == paths.QUESTIONNAIRE_DIR
    assert Path(settings["PROFILE_DIR"]) == paths.PROFILE_DIR


def test_values_are_converted() -> None:
    settings = load_settings(
        {"AUTH": "none", "MAX_BODY_BYTES": "4096", "LOG_LEVEL": "DEBUG",
         "BASE_URL": "http://localhost:8080/fhir", "RCI_METHOD": "edwards-nunnally"}
    )
    assert settings["MAX_BODY_BYTES"] == 4096
    assert settings["LOG_LEVEL"] == "DEBUG"
    assert settings["BASE_URL"] == "http://localhost:8080/fhir"
    assert settings["RCI_METHOD"] == "edwards-nunnally"


def test_env_settings_takes_only_the_prefixed_variables() -> None:
    env = {"MIT_FHIR_LOG_LEVEL": "ERROR", "PATH": "/bin", "FHIR_X": "1", "MIT_FHIRX": "2"}
    assert env_settings(env) == {"LOG_LEVEL": "ERROR"}


BAD = [
    ("MAX_BODY_BYTES", "lots"),
    ("MAX_BODY_BYTES", "10"),
    ("MAX_BODY_BYTES", str(65 * 1_048_576)),
    ("LOG_LEVEL", "verbose"),
    ("RCI_METHOD", "rci-by-feel"),
    ("BASE_URL", "not a url"),
    ("QUESTIONNAIRE_DIR", "/definitely/not/here"),
    ("PROFILE_DIR", "/definitely/not/here"),
    ("PSYCHOMETRICS_FILE", "/definitely/not/here.json"),
    ("SEARCH_MAX_COUNT", "0"),
    ("SEARCH_MAX_COUNT", "100000"),  # one response must stay bounded
    ("SEARCH_DEFAULT_COUNT", "many"),
    ("DATABSE_URL", "sqlite://"),  # a typo is an unknown variable, not silently ignored
    ("BOGUS", "1"),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_bad_or_unknown_setting_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"MIT_FHIR_{name}"):
        load_settings({name: value})


def test_the_default_page_cannot_exceed_the_maximum() -> None:
    with pytest.raises(ConfigError, match="MIT_FHIR_SEARCH_DEFAULT_COUNT"):
        load_settings({"AUTH": "none", "SEARCH_DEFAULT_COUNT": "100", "SEARCH_MAX_COUNT": "20"})
    settings = load_settings({"AUTH": "none"})
    assert (settings["SEARCH_DEFAULT_COUNT"], settings["SEARCH_MAX_COUNT"]) == (50, 500)


def test_every_problem_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"MAX_BODY_BYTES": "x", "LOG_LEVEL": "loud"})
    assert "MIT_FHIR_MAX_BODY_BYTES" in str(info.value)
    assert "MIT_FHIR_LOG_LEVEL" in str(info.value)


def test_create_app_refuses_bad_settings(database_url: str) -> None:
    with pytest.raises(ConfigError, match="MIT_FHIR_MAX_BODY_BYTES"):
        create_app({"DATABASE_URL": database_url,
                    "MAX_BODY_BYTES": "huge"})


def test_create_app_reads_the_environment(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIT_FHIR_DATABASE_URL", database_url)
    monkeypatch.setenv("MIT_FHIR_MAX_BODY_BYTES", "4096")
    app = create_app()
    try:
        assert app.config["MAX_CONTENT_LENGTH"] == 4096
        assert app.config["DATABASE_URL"] == database_url
        assert is_current(app.extensions["mit_fhir"].store.engine)  # migrated there
    finally:
        app.extensions["mit_fhir"].store.dispose()


def _check(env: dict[str, str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["check-config"], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_check_config_passes_a_good_configuration(database_url: str) -> None:
    code, out, _err = _check({"MIT_FHIR_DATABASE_URL": database_url,
                              "MIT_FHIR_LOG_LEVEL": "WARNING"})
    assert code == 0
    assert "configuration ok" in out


@pytest.mark.parametrize(("name", "value"), BAD)
def test_check_config_fails_naming_the_variable(name: str, value: str) -> None:
    code, out, err = _check({f"MIT_FHIR_{name}": value})
    assert code == 1
    assert f"MIT_FHIR_{name}" in err
    assert "configuration ok" not in out


JWT = {"AUTH": "jwt", "AUTH_ISSUER": "https://idp.example.org/realm"}


def test_jwt_audience_defaults_to_the_base_url() -> None:
    with pytest.raises(ConfigError, match="MIT_FHIR_AUTH_AUDIENCE: required"):
        load_settings(JWT)
    settings = load_settings({**JWT, "BASE_URL": "https://mit.example.org/fhir"})
    assert settings["AUTH_AUDIENCE"] == "https://mit.example.org/fhir"


@pytest.mark.parametrize(("extra", "message"), [
    ({"AUTH_ALGORITHMS": "HS256"}, "MIT_FHIR_AUTH_ALGORITHMS: use asymmetric"),
    ({"AUTH_ALGORITHMS": "RS256,none"}, "MIT_FHIR_AUTH_ALGORITHMS"),
    ({"AUTH_ALGORITHMS": " , "}, "MIT_FHIR_AUTH_ALGORITHMS"),
    ({"CORS_ORIGINS": "*"}, "MIT_FHIR_CORS_ORIGINS: '\\*' is not an origin"),
    ({"CORS_ORIGINS": "https://ehr.example.org/app"}, "MIT_FHIR_CORS_ORIGINS"),
    ({"FRAME_ANCESTORS": "ehr.example.org"}, "MIT_FHIR_FRAME_ANCESTORS"),
    ({"AUTH_JWKS_FILE": "/nonexistent/jwks.json"}, "MIT_FHIR_AUTH_JWKS_FILE: no such file"),
    ({"AUTH": "basic"}, "MIT_FHIR_AUTH"),
])
def test_bad_security_settings_are_refused_by_name(extra: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({**JWT, "AUTH_AUDIENCE": "mit-fhir", **extra})


def test_origins_are_normalised() -> None:
    settings = load_settings({**JWT, "AUTH_AUDIENCE": "mit-fhir",
                              "CORS_ORIGINS": "https://a.example.org/, http://localhost:3000",
                              "FRAME_ANCESTORS": "https://ehr.example.org"})
    assert settings["CORS_ORIGINS"] == "https://a.example.org,http://localhost:3000"
    assert settings["FRAME_ANCESTORS"] == "https://ehr.example.org"
