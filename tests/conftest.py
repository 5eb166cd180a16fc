"""Shared fixtures: an app on a fresh database, its test client and CLI runner.

The store of the whole run is chosen once: `--database sqlite|postgresql` or the environment
variable MIT_FHIR_TEST_DATABASE (default sqlite); `make test` runs the suite once on each.
`database_url` (fixture) and `fresh_database_url(tmp_path)` (plain function, for fixtures of a
wider scope) give a SQLite file in tmp_path, or on PostgreSQL a URL bound to a schema of its
own (created here; `search_path` set by the connection's options, so the tables and Alembic's
version table land in it), dropped at the fixture's teardown or at the end of the session.
The server is MIT_FHIR_TEST_POSTGRES_URL (default postgresql+psycopg://root@127.0.0.1:5432/test).
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from mit_fhir.app import create_app
from mit_fhir.vocabulary import FHIR_JSON

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLES = DATA / "samples"


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def sample(questionnaire_id: str, name: str = "complete") -> dict[str, Any]:
    """A sample QuestionnaireResponse from tests/data/samples/<id>/<name>.json."""
    data: dict[str, Any] = load_json(SAMPLES / questionnaire_id / f"{name}.json")
    return data


DATABASES = ("sqlite", "postgresql")
POSTGRES_URL = os.environ.get("MIT_FHIR_TEST_POSTGRES_URL",
                              "postgresql+psycopg://root@127.0.0.1:5432/test")
_state: dict[str, Any] = {"database": os.environ.get("MIT_FHIR_TEST_DATABASE") or "sqlite",
                          "admin": None, "schemas": []}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--database", choices=DATABASES, default=None,
                     help="the store for the whole run (default: $MIT_FHIR_TEST_DATABASE, "
                          "else sqlite)")


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("--database") or os.environ.get("MIT_FHIR_TEST_DATABASE") or "sqlite"
    if name not in DATABASES:
        raise pytest.UsageError(f"MIT_FHIR_TEST_DATABASE={name!r}: use one of {DATABASES}")
    _state["database"] = name
    # The service refuses MIT_FHIR_* variables it does not know (a typo is an error), and the
    # tests start it in-process and as subprocesses: these two are the suite's, not its.
    for key in ("MIT_FHIR_TEST_DATABASE", "MIT_FHIR_TEST_POSTGRES_URL"):
        os.environ.pop(key, None)
    # Development mode (no tokens, loopback only) unless a test configures MIT_FHIR_AUTH=jwt:
    # tests/security covers authentication and authorisation with real tokens.
    os.environ["MIT_FHIR_AUTH"] = "none"
    _capture_service_logs()
    if name == "postgresql":
        try:
            with _admin().connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise pytest.UsageError(
                f"the PostgreSQL test run needs a server at {make_url(POSTGRES_URL)!r} "
                f"(set MIT_FHIR_TEST_POSTGRES_URL, or start PostgreSQL): {exc}") from None


def pytest_report_header(config: pytest.Config) -> str:
    where = f" ({make_url(POSTGRES_URL)!r}, a schema per test)" if on_postgresql() else ""
    return f"mit-fhir test database: {_state['database']}{where}"


def pytest_unconfigure(config: pytest.Config) -> None:
    for schema in list(_state["schemas"]):
        _drop_schema(schema)
    if _state["admin"] is not None:
        _state["admin"].dispose()


LOGS = ROOT / "build" / "logs"


def log_dir() -> Path:
    """This run's log directory: build/logs/<database>/ (scanned for patient data after it)."""
    return LOGS / database_kind()


def service_log(name: str) -> Path:
    """A log file for a service subprocess (`mit-fhir serve` or `worker`) started by a test."""
    path = log_dir() / "services" / f"{name}-{uuid.uuid4().hex[:8]}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def service_env(**settings: str) -> dict[str, str]:
    """The environment of a service subprocess: this one's without MIT_FHIR_* variables, in
    development mode (loopback only, no tokens), plus the given MIT_FHIR_<name> settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIT_FHIR_")}
    env["MIT_FHIR_AUTH"] = "none"
    env["MIT_FHIR_LOG_LEVEL"] = "DEBUG"
    env.update({f"MIT_FHIR_{k}": v for k, v in settings.items()})
    return env


def _capture_service_logs() -> None:
    # Every record of the service's loggers during the run, as the JSON the service writes,
    # for tests/phi_scan.py (make test scans it for the test patients' data afterwards).
    import shutil

    from mit_fhir.web.logs import RequestIdFilter, formatter

    shutil.rmtree(log_dir(), ignore_errors=True)
    log_dir().mkdir(parents=True)
    handler = logging.FileHandler(log_dir() / "in-process.jsonl", encoding="utf-8")
    handler.setFormatter(formatter())
    handler.addFilter(RequestIdFilter())
    # On the package's logger, not the root: `mit-fhir` commands run in-process by the CLI tests
    # configure it (stderr, no propagation) as they do in production.
    logging.getLogger("mit_fhir").addHandler(handler)
    os.environ["MIT_FHIR_LOG_LEVEL"] = "DEBUG"


def database_kind() -> str:
    """"sqlite" or "postgresql": the store of this run."""
    return str(_state["database"])


def on_postgresql() -> bool:
    return database_kind() == "postgresql"


def _admin() -> Engine:
    if _state["admin"] is None:
        _state["admin"] = create_engine(POSTGRES_URL, poolclass=NullPool)
    engine: Engine = _state["admin"]
    return engine


def fresh_database_url(tmp_path: Path, name: str = "test") -> str:
    """A new, empty database for this run's store: a SQLite file in tmp_path, or a PostgreSQL
    schema of its own (dropped by `drop_database` or at the end of the session)."""
    if not on_postgresql():
        return f"sqlite:///{tmp_path / f'{name}.sqlite3'}"
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with _admin().begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    _state["schemas"].append(schema)
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def schema_of(url: str) -> str | None:
    """The PostgreSQL schema a `fresh_database_url` URL is bound to (None for SQLite)."""
    found = re.search(r"search_path=(\w+)", str(make_url(url).query.get("options", "")))
    return found.group(1) if found else None


def drop_database(url: str) -> None:
    """Drop a `fresh_database_url` database (PostgreSQL: the schema; SQLite: tmp_path does)."""
    schema = schema_of(url)
    if schema is not None:
        _drop_schema(schema)


def _drop_schema(schema: str) -> None:
    if schema not in _state["schemas"]:
        return
    _state["schemas"].remove(schema)
    try:
        with _admin().begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    except Exception as exc:
        warnings.warn(f"could not drop test schema {schema}: {exc}", stacklevel=1)


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of this run's kind (see the module docstring)."""
    url = fresh_database_url(tmp_path)
    yield url
    drop_database(url)


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    application = create_app({"DATABASE_URL": database_url})
    yield application
    application.extensions["mit_fhir"].store.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class FhirActions:
    """Small helpers over the test client (flaskr's AuthActions pattern)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def post(self, path: str, resource: Any) -> Any:
        return self.client.post(path, data=json.dumps(resource), content_type=FHIR_JSON)

    def submit(self, qr: dict[str, Any]) -> Any:
        return self.post("/fhir/QuestionnaireResponse", qr)


@pytest.fixture
def fhir(client: FlaskClient) -> FhirActions:
    return FhirActions(client)


def stored_counts(app: Flask) -> dict[str, int]:
    """Rows of stored data (resources, their index rows, outbox rows), leaving out the audit
    trail: it records refused requests too, by design. Equal before and after a rejected
    request means nothing was half-stored."""
    from sqlalchemy import func, select

    from mit_fhir.store.schema import outbox, resource, search_index

    with app.extensions["mit_fhir"].store.transaction() as conn:
        counts = {t.name: conn.execute(select(func.count()).select_from(t).where(
            t.c.resource_type != "AuditEvent")).scalar_one() for t in (resource, search_index)}
        counts["outbox"] = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
    return counts
