"""Settings: defaults, MIT_FHIR_* variables, and refusal of anything wrong at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import create_engine

from mit_fhir import paths
from mit_fhir.app import create_app
from mit_fhir.cli import main
from mit_fhir.config import (
    GROUPS,
    ConfigError,
    SettingsSchema,
    env_settings,
    load_settings,
)
from mit_fhir.store.migrate import alembic_config, is_current, revisions
from tests.servers.fixtures import free_port


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


def _check(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["check-config", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_check_config_passes_a_good_configuration(database_url: str) -> None:
    env = {"MIT_FHIR_DATABASE_URL": database_url, "MIT_FHIR_LOG_LEVEL": "WARNING"}
    code, _out, err = _check(env)
    assert code == 75  # not migrated yet: the code's head is not the database's revision
    assert "empty (no migration applied)" in err and "mit-fhir db upgrade" in err
    assert CliRunner().invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    code, out, _err = _check(env)
    assert code == 0
    assert "configuration ok" in out
    engine = create_engine(database_url)
    assert f"at migration {revisions(engine)[1]}" in out
    engine.dispose()


def test_check_config_names_a_database_behind_the_code(database_url: str) -> None:
    env = {"MIT_FHIR_DATABASE_URL": database_url}
    assert CliRunner().invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    engine = create_engine(database_url)
    cfg = alembic_config(engine)
    with engine.begin() as conn:  # what a database the migrate Job has not reached looks like
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "-1")
    current, head = revisions(engine)
    engine.dispose()
    assert current != head
    code, _out, err = _check(env)
    assert code == 75
    assert f"is at migration {current}; the code needs {head}" in err


def test_check_config_offline_does_not_connect() -> None:
    unreachable = f"postgresql://mit:hunter2@127.0.0.1:{free_port()}/mit"
    code, out, _err = _check({"MIT_FHIR_DATABASE_URL": unreachable, "MIT_FHIR_AUTH": "none"})
    assert code == 69
    code, out, _err = _check({"MIT_FHIR_DATABASE_URL": unreachable, "MIT_FHIR_AUTH": "none"},
                             "--offline")
    assert code == 0
    assert "database not checked" in out


@pytest.mark.parametrize("url", [
    "postgresql://mit:hunter2@127.0.0.1:{port}/mit",  # nothing listens there
    "postgres://mit:hunter2@db-typo.invalid:5432/mit",  # a misspelt host
])
def test_check_config_fails_in_one_line_on_an_unreachable_database(url: str) -> None:
    url = url.format(port=free_port())
    code, out, err = _check({"MIT_FHIR_DATABASE_URL": url})
    assert code == 69
    assert "configuration ok" not in out
    assert len(err.strip().splitlines()) == 1
    assert "hunter2" not in err
    host = url.split("@")[1].split(":")[0]
    assert f"PostgreSQL at {host}" in err
    assert ("Connection refused" in err) or ("failed to resolve host" in err)


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql+psycopg2://mit@db/mit", "'postgresql+psycopg2' is not supported"),
    ("mysql://mit@db/mit", "'mysql' is not supported"),
    ("db.example.org:5432", "not a database URL"),
])
def test_other_drivers_are_refused_with_the_spelling_to_use(url: str, message: str) -> None:
    code, _out, err = _check({"MIT_FHIR_DATABASE_URL": url})
    assert code == 78
    assert f"MIT_FHIR_DATABASE_URL: {message}" in err
    assert "postgresql://USER@HOST:PORT/DATABASE (psycopg 3)" in err


# F7, F8: URLs SQLAlchemy cannot split (a port that is no number, several hosts) or splits
# wrongly (a raw "@" in the password ends it early): one line and 78, no part of the password.
BAD_URLS = [
    ("postgresql://alice:S3cr3tPW@h:notaport/db", "the port is not a number"),
    ("postgresql://alice:S3cr3tPW@h1:5432,h2:5432/db", "the port is not a number"),
    ("postgresql://alice:S3cr3t@PW@127.0.0.1:5432/db", "must be percent-encoded as %40"),
]


@pytest.mark.parametrize("command", [["check-config"], ["db", "upgrade"],
                                     ["export", "--since", "2024-01-01"]])
@pytest.mark.parametrize(("url", "message"), BAD_URLS)
def test_an_unreadable_database_url_is_one_line_without_the_password(
        command: list[str], url: str, message: str) -> None:
    result = CliRunner().invoke(main, command, env={"MIT_FHIR_DATABASE_URL": url,
                                                    "MIT_FHIR_AUTH": "none"})
    assert result.exit_code == 78, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: invalid configuration: MIT_FHIR_DATABASE_URL: ")
    assert message in line
    assert "S3cr3t" not in result.output and "PW" not in result.output


def test_a_percent_encoded_at_is_the_password_s_own(database_url: str) -> None:
    url = f"postgresql://alice:S3cr3t%40PW@127.0.0.1:{free_port()}/db"
    code, _out, err = _check({"MIT_FHIR_DATABASE_URL": url, "MIT_FHIR_AUTH": "none"})
    assert code == 69 and "PostgreSQL at 127.0.0.1:" in err  # parsed, then not reached
    assert "S3cr3t" not in err and "PW" not in err


@pytest.mark.parametrize(("typo", "meant"), [
    ("DATABSE_URL", "DATABASE_URL"),
    ("AUTH_ISSUR", "AUTH_ISSUER"),
    ("SMART_CLIENTID", "SMART_CLIENT_ID"),
])
def test_a_misspelt_setting_is_named_with_the_near_one(typo: str, meant: str) -> None:
    code, _out, err = _check({f"MIT_FHIR_{typo}": "x"}, "--offline")
    assert code == 78
    assert f"MIT_FHIR_{typo}: unknown setting (did you mean MIT_FHIR_{meant}?)" in err


def test_a_name_near_nothing_gets_no_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"AUTH": "none", "COLOUR": "blue"})
    assert "MIT_FHIR_COLOUR: unknown setting" in str(info.value)
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize(("name", "value"), BAD)
def test_check_config_fails_naming_the_variable(name: str, value: str) -> None:
    code, out, err = _check({f"MIT_FHIR_{name}": value})
    assert code == 78
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


# Settings grouped by what uses them: a command validates only its groups ------------------
STORE_ONLY = ("database", "logging")


def test_the_store_groups_need_no_http_settings() -> None:
    raw = {"AUTH": "jwt", "METRICS_TOKEN_FILE": "/var/run/secrets/mit-fhir/metrics-token",
           "DATABASE_URL": "postgres://mit@db:5432/mit"}
    with pytest.raises(ConfigError, match="MIT_FHIR_METRICS_TOKEN_FILE: no such file"):
        load_settings(raw)  # serve validates everything
    settings = load_settings(raw, STORE_ONLY)
    assert set(settings) == {"DATABASE_URL", "LOG_LEVEL"}  # the others are not even read
    assert settings["DATABASE_URL"] == "postgresql+psycopg://mit@db:5432/mit"


def test_a_group_still_validates_its_own_settings() -> None:
    with pytest.raises(ConfigError, match="MIT_FHIR_LOG_LEVEL"):
        load_settings({"LOG_LEVEL": "chatty"}, STORE_ONLY)
    with pytest.raises(ConfigError, match="MIT_FHIR_EHR_BEARER_TOKEN_FILE: required when"):
        load_settings({"EHR_BASE_URL": "http://ehr/fhir", "EHR_AUTH": "bearer"},
                      (*STORE_ONLY, "outbox", "sync"))
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings({"BOGUS": "1"}, STORE_ONLY)  # a typo is an error whatever the command


def test_every_setting_has_a_group_a_default_and_a_description() -> None:
    for name, field in SettingsSchema._declared_fields.items():
        assert field.metadata.get("group") in GROUPS, name
        assert field.metadata.get("default"), name
        assert len(field.metadata.get("description", "")) > 10, name


def test_the_suites_own_variables_are_not_settings() -> None:
    """A shell that exported MIT_FHIR_TEST_DATABASE can still `make run` (newcomer finding)."""
    raw = env_settings({"MIT_FHIR_TEST_DATABASE": "postgresql",
                        "MIT_FHIR_TEST_POSTGRES_URL": "postgresql+psycopg://root@127.0.0.1/test",
                        "MIT_FHIR_AUTH": "none"})
    assert raw == {"AUTH": "none"}
    load_settings(raw)
