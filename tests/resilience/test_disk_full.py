"""The embedded SQLite store's disk fills up: 503 OperationOutcome, nothing acknowledged is lost.

Two ways to fill it: SQLite's own `PRAGMA max_page_count` on every connection of an in-process
app (runs anywhere), and a real 2 MiB tmpfs under the live service (needs root to mount;
skipped where mounting is not allowed).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, event, select
from sqlalchemy.pool import NullPool

from mit_fhir.store.schema import resource
from tests.conftest import FHIR_JSON, on_postgresql, sample
from tests.resilience.live import build_app, live_service

pytestmark = pytest.mark.skipif(on_postgresql(), reason="the embedded SQLite store's disk")


def _submission(n: int) -> dict[str, Any]:
    qr = sample("phq-9")
    qr["subject"] = {"reference": f"Patient/disk-{n % 7}"}
    qr["identifier"] = {"system": "urn:example:disk-full", "value": f"r-{n}"}
    return qr


def _assert_unavailable(status: int, body: dict[str, Any]) -> None:
    assert status in (503, 507), body
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "transient"


def _stored(url: str) -> dict[str, int]:
    """Responses (by identifier) and Observations in the file, read with a fresh connection."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(resource.c.resource_type, resource.c.content)).all()
    finally:
        engine.dispose()
    out: dict[str, int] = {"Observation": 0}
    for rtype, content in rows:
        if rtype == "QuestionnaireResponse":
            ident = json.loads(content)["identifier"]["value"]
            out[ident] = out.get(ident, 0) + 1
        elif rtype == "Observation":
            out["Observation"] += 1
    return out


def _check_nothing_lost(url: str, acknowledged: list[str], refused: list[str]) -> None:
    stored = _stored(url)
    for ident in acknowledged:
        assert stored.get(ident) == 1, ident  # every 201 is there, once
    for ident in refused:
        assert ident not in stored, ident  # a refused submission left nothing behind
    assert stored["Observation"] == 3 * len(acknowledged)  # panel, total, band: all or none


def test_max_page_count_full_store_answers_503_and_recovers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'full.sqlite3'}"
    app = build_app(url)
    engine = app.extensions["mit_fhir"].store.engine
    engine.dispose()
    limit = {"pages": 0}

    @event.listens_for(engine, "checkout")
    def _cap(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        current = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        pages = limit["pages"] or 1_000_000
        dbapi_conn.execute(f"PRAGMA max_page_count = {max(pages, current)}")

    client = app.test_client()
    acknowledged, refused = [], []
    with engine.connect() as conn:
        limit["pages"] = conn.exec_driver_sql("PRAGMA page_count").scalar_one() + 8
    n = 0
    while not refused:
        n += 1
        assert n < 500, "the capped store never filled up"
        resp = client.post("/fhir/QuestionnaireResponse", data=json.dumps(_submission(n)),
                           content_type=FHIR_JSON)
        ident = f"r-{n}"
        if resp.status_code == 201:
            acknowledged.append(ident)
        else:
            _assert_unavailable(resp.status_code, resp.get_json())
            refused.append(ident)
    assert acknowledged, "some submissions fitted before the store filled up"
    # The catalogue still reads on a full store; patient data does not, since its read could
    # not be audited (mit_fhir/security/audit.py: no unaudited reads).
    assert client.get("/fhir/Questionnaire/phq-9").status_code == 200
    full_read = client.get("/fhir/QuestionnaireResponse?identifier=r-1")
    _assert_unavailable(full_read.status_code, full_read.get_json())
    _check_nothing_lost(url, acknowledged, refused)

    limit["pages"] = 0  # space frees
    engine.dispose()
    retried = client.post("/fhir/QuestionnaireResponse", data=json.dumps(_submission(n)),
                          content_type=FHIR_JSON)
    assert retried.status_code == 201, retried.get_json()
    _check_nothing_lost(url, [*acknowledged, refused[0]], [])
    engine.dispose()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_filesystem_under_the_live_service(tmp_path: Path, tiny_disk: Path) -> None:
    url = f"sqlite:///{tiny_disk / 'mit-fhir.sqlite3'}"
    acknowledged, refused = [], []
    with live_service(tmp_path, url, workers=1) as base, requests.Session() as http:
        filler = tiny_disk / "filler"
        # Leave roughly 150 KB free: a few dozen submissions, then the disk is full.
        free = _free_bytes(tiny_disk)
        filler.write_bytes(b"\0" * max(0, free - 150_000))
        n = 0
        while len(refused) < 3:
            n += 1
            assert n < 2000, "the disk never filled up"
            resp = http.post(f"{base}/fhir/QuestionnaireResponse", json=_submission(n),
                             headers={"Content-Type": FHIR_JSON}, timeout=30)
            if resp.status_code == 201:
                acknowledged.append(f"r-{n}")
            else:
                _assert_unavailable(resp.status_code, resp.json())
                refused.append(f"r-{n}")
        assert acknowledged
        _check_nothing_lost(url, acknowledged, refused)
        filler.unlink()  # space frees: the same submissions go through on a retry
        for ident in refused:
            again = http.post(f"{base}/fhir/QuestionnaireResponse",
                              json=_submission(int(ident[2:])),
                              headers={"Content-Type": FHIR_JSON}, timeout=30)
            assert again.status_code == 201, again.text
        fresh = http.post(f"{base}/fhir/QuestionnaireResponse", json=_submission(n + 1),
                          headers={"Content-Type": FHIR_JSON}, timeout=30)
        assert fresh.status_code == 201
    _check_nothing_lost(url, [*acknowledged, *refused, f"r-{n + 1}"], [f"r-{uuid.uuid4()}"])


def _free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize
