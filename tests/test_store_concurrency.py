"""The store under load: searches that do not read other patients' rows; SQLite writers queued."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Connection, select

from mit_fhir.errors import ServiceUnavailable
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.store import repository
from mit_fhir.store.repository import Store
from mit_fhir.store.schema import resource
from mit_fhir.store.writer_lock import WriterLock
from mit_fhir.usecases import scorer as outcomes
from mit_fhir.usecases.scorer import histories, history
from tests.conftest import FHIR_JSON, on_postgresql, sample

sqlite_only = pytest.mark.skipif(on_postgresql(), reason="SQLite only: this run's store is "
                                 "PostgreSQL")
PHQ9_TOTAL = {"system": "http://loinc.org", "code": "44261-6"}


def _observation(patient: str, day: int) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"coding": [PHQ9_TOTAL]},
            "subject": {"reference": patient}, "effectiveDateTime": f"2024-01-{day:02d}",
            "valueQuantity": {"value": day}}


def _store_observations(conn: Connection, patient: str, days: range) -> None:
    for day in days:
        obs = _observation(patient, day)
        repository.insert(conn, obs, [("patient", patient), ("code", "http://loinc.org|44261-6"),
                                      ("date", obs["effectiveDateTime"]),
                                      ("status:code", "final")],
                          sort_date=obs["effectiveDateTime"])


def _sqlite_steps(conn: Connection, fn: Any) -> int:
    """SQLite virtual-machine steps (in thousands) that fn(conn) costs."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    raw = conn.connection.driver_connection
    raw.set_progress_handler(count, 1000)
    try:
        fn(conn)
    finally:
        raw.set_progress_handler(None, 1000)
    return steps[0]


@pytest.fixture
def store(database_url: str) -> Any:
    s = Store(database_url)
    repository_upgrade(s)
    yield s
    s.dispose()


def repository_upgrade(s: Store) -> None:
    from mit_fhir.store.migrate import upgrade

    upgrade(s.engine)


def test_history_finds_the_patients_baseline_and_previous(store: Store) -> None:
    with store.transaction() as conn:
        _store_observations(conn, "Patient/a", range(1, 6))
        _store_observations(conn, "Patient/b", range(1, 20))
        baseline, previous = history(conn, "Patient/a", PHQ9_TOTAL, "2024-01-05")
    assert baseline is not None and previous is not None
    assert (baseline["valueQuantity"]["value"], previous["valueQuantity"]["value"]) == (1, 4)


def test_histories_of_several_codes_equal_one_search_each(store: Store) -> None:
    other = {"system": "http://loinc.org", "code": "70274-6"}
    with store.transaction() as conn:
        _store_observations(conn, "Patient/a", range(3, 9))
        obs = _observation("Patient/a", 1) | {"code": {"coding": [other]}}
        repository.insert(conn, obs, [("patient", "Patient/a"), ("code", "http://loinc.org|70274-6"),
                                      ("date", "2024-01-01"), ("status:code", "final")],
                          sort_date="2024-01-01")
        both = histories(conn, "Patient/a", [PHQ9_TOTAL, other, PHQ9_TOTAL], "2024-01-07")
        assert both == {"http://loinc.org|44261-6": history(conn, "Patient/a", PHQ9_TOTAL,
                                                             "2024-01-07"),
                        "http://loinc.org|70274-6": history(conn, "Patient/a", other,
                                                             "2024-01-07")}
    phq9, gad7 = both.values()
    assert [o["valueQuantity"]["value"] for o in phq9 if o] == [3, 6]
    assert gad7[0] is gad7[1] and gad7[0] is not None


def test_a_submission_reads_the_history_once_for_all_its_scores(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    searches: list[str] = []
    real = repository.search

    def counting(conn: Connection, resource_type: str, *args: Any, **kwargs: Any) -> Any:
        searches.append(resource_type)
        return real(conn, resource_type, *args, **kwargs)

    monkeypatch.setattr(outcomes.repository, "search", counting)
    client = app.test_client()
    for authored in ("2024-01-01T10:00:00Z", "2024-03-01T10:00:00Z"):
        qr = sample("scl-90-r") | {"authored": authored}
        resp = client.post("/fhir/QuestionnaireResponse", json=qr,
                           headers={"Content-Type": FHIR_JSON})
        assert resp.status_code == 201, resp.get_data(as_text=True)
    assert searches == ["Observation", "Observation"]  # not one per score (12 scores)
    scores = client.get("/fhir/Observation", query_string={
        "derived-from": f"QuestionnaireResponse/{resp.json['id']}"}).json["entry"]
    flagged = [e for e in scores if any("reliable-change" in x["url"]
                                        for x in e["resource"].get("extension", ()))]
    assert flagged  # the second response's scores (the GSI) were compared with the first's


@sqlite_only
def test_a_patients_history_costs_the_same_however_many_other_patients(store: Store) -> None:
    """Before the fix each search read every Observation of every patient, and each date test
    read every date row: 20 ms at 2,000 Observations and growing quadratically."""
    with store.transaction() as conn:
        _store_observations(conn, "Patient/me", range(1, 6))
        _store_observations(conn, "Patient/other-0", range(1, 21))

    def search(conn: Connection) -> None:
        found = history(conn, "Patient/me", PHQ9_TOTAL, "2024-01-31")
        assert found[0] is not None and found[0]["valueQuantity"]["value"] == 1

    with store.transaction() as conn:
        few = _sqlite_steps(conn, search)
    with store.transaction() as conn:
        for n in range(1, 100):
            _store_observations(conn, f"Patient/other-{n}", range(1, 21))
    with store.transaction() as conn:
        assert len(conn.execute(select(resource.c.id)).all()) == 2005
        many = _sqlite_steps(conn, search)
    assert many <= few + 2, (few, many)


def test_searches_match_every_criterion_whichever_comes_first(store: Store) -> None:
    with store.transaction() as conn:
        _store_observations(conn, "Patient/a", range(1, 11))
        _store_observations(conn, "Patient/b", range(1, 11))
        criteria = [Criterion("date", "ge", ("2024-01-04",)),
                    Criterion("patient", "eq", ("Patient/a", "Patient/b")),
                    Criterion("date", "lt", ("2024-01-06",))]
        found = repository.search(conn, "Observation", criteria, sort="date")
        assert sorted((o["subject"]["reference"], o["valueQuantity"]["value"]) for o in found) == [
            ("Patient/a", 4), ("Patient/a", 5), ("Patient/b", 4), ("Patient/b", 5)]
        only_ranges = repository.search(conn, "Observation", criteria[::2], sort="date")
        assert len(only_ranges) == 4


# SQLite writers -----------------------------------------------------------------------------
def _hold(path: str, held: Any, release: Any) -> None:
    lock = WriterLock(path)
    lock.acquire()
    held.set()
    release.wait(20)
    lock.release()


@sqlite_only
def test_two_processes_never_hold_the_writer_lock_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite3")
    ctx = multiprocessing.get_context("fork")
    held, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=(path, held, release))
    child.start()
    try:
        assert held.wait(20)
        lock = WriterLock(path, timeout=0.3)
        with pytest.raises(ServiceUnavailable):
            lock.acquire()
        release.set()
        start = time.monotonic()
        lock = WriterLock(path, timeout=10)
        lock.acquire()
        assert time.monotonic() - start < 5
        lock.release()
    finally:
        release.set()
        child.join(20)


@sqlite_only
def test_a_failed_write_hands_the_lock_on(store: Store) -> None:
    assert store.writer_lock is not None
    with pytest.raises(ZeroDivisionError), store.transaction() as conn:
        _store_observations(conn, "Patient/a", range(1, 2))
        raise ZeroDivisionError
    done = threading.Event()

    def write() -> None:
        with store.transaction() as conn:
            _store_observations(conn, "Patient/b", range(1, 2))
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(10)
    assert done.is_set()
    with store.transaction() as conn:  # only the committed write is there
        assert len(conn.execute(select(resource.c.id)).all()) == 1


@sqlite_only
def test_a_nested_read_does_not_release_the_outer_writers_lock(store: Store) -> None:
    assert store.writer_lock is not None
    with store.transaction() as conn:
        _store_observations(conn, "Patient/a", range(1, 2))
        with store.transaction() as inner:
            inner.execute(select(resource.c.id)).all()
        assert store.writer_lock._thread_lock.locked()
    assert not store.writer_lock._thread_lock.locked()


def test_concurrent_submissions_are_all_stored(app: Flask) -> None:
    statuses: list[int] = []

    def submit(worker: int) -> None:
        client = app.test_client()
        for n in range(6):
            qr = sample("phq-9")
            qr["subject"] = {"reference": f"Patient/concurrent-{(worker + n) % 3}"}
            qr["authored"] = f"2024-02-{1 + n:02d}T10:00:00Z"
            resp = client.post("/fhir/QuestionnaireResponse", json=qr,
                               headers={"Content-Type": FHIR_JSON})
            statuses.append(resp.status_code)

    threads = [threading.Thread(target=submit, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert statuses == [201] * 48
    client = app.test_client()
    for p in range(3):
        found = client.get(f"/fhir/QuestionnaireResponse?subject=Patient/concurrent-{p}").json
        assert found["total"] == 16
