"""Fixtures of the bulk tests: applications on extra fresh databases and the CLI on one.

Every app and CLI run of these tests is built here (the one place to add settings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask

from mit_fhir.app import create_app
from mit_fhir.cli import main
from tests.conftest import drop_database, fresh_database_url

SETTINGS: dict[str, Any] = {}  # settings every app and CLI run of these tests gets


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Build an app on a new fresh database (or on `url`); disposed at teardown."""
    made: list[tuple[Flask, str | None]] = []

    def build(url: str | None = None, **config: Any) -> Flask:
        fresh = None
        if url is None:
            url = fresh = fresh_database_url(tmp_path, f"db{len(made)}")
        app = create_app({**SETTINGS, "DATABASE_URL": url, **config})
        made.append((app, fresh))
        return app

    yield build
    for app, fresh in made:
        app.extensions["mit_fhir"].store.dispose()
        if fresh is not None:
            drop_database(fresh)


def cli_env(url: str) -> dict[str, str]:
    """The environment of a `mit-fhir` run on that database."""
    env = {f"MIT_FHIR_{k}": str(v) for k, v in SETTINGS.items()}
    return {**env, "MIT_FHIR_DATABASE_URL": url}


@pytest.fixture
def cli(database_url: str) -> Callable[..., Result]:
    """Run `mit-fhir ARGS` in-process on the test's database."""
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=cli_env(database_url))

    return invoke
