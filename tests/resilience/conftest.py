"""Fixtures of the resilience suites: the live service (through live.py) on a fresh database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import drop_database, fresh_database_url
from tests.resilience.live import live_service


@pytest.fixture(scope="module")
def live_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mit-fhir serve` (gunicorn, two workers) on loopback, for the whole module."""
    tmp = tmp_path_factory.mktemp("live")
    url = fresh_database_url(tmp, "live")
    try:
        with live_service(tmp, url) as base:
            yield base
    finally:
        drop_database(url)
