"""repository.search_page: keyset pages that survive concurrent inserts, on this run's database.

Each case stores 120 resources whose sort dates repeat and are sometimes missing (so the id
tiebreaker and the NULL handling are exercised), reads them page by page, and between every two
pages inserts new resources that sort before, among and after the ones already read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mit_fhir.fhir.criteria import Criterion
from mit_fhir.store import repository
from mit_fhir.store.migrate import upgrade
from mit_fhir.store.repository import Store

PATIENT = Criterion("patient", "eq", ("Patient/p1",))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    upgrade(s.engine)
    yield s
    s.dispose()


def _date(n: int) -> str | None:
    # 15 distinct days, each shared by about 8 resources; every 11th has no date at all.
    return None if n % 11 == 0 else f"2026-01-{1 + n % 15:02d}T09:00:00"


def _add(store: Store, n: int, patient: str = "Patient/p1",
         sort_date: str | None = None) -> tuple[str, str]:
    obs: dict[str, Any] = {"resourceType": "Observation", "status": "final",
                           "subject": {"reference": patient}}
    with store.transaction() as conn:
        repository.insert(conn, obs, [("patient", patient), ("subject", patient)],
                          sort_date=sort_date if sort_date is not None else _date(n))
    return str(obs["id"]), str(obs["meta"]["lastUpdated"])


def _expected_order(keys: dict[str, str], sort: str | None) -> list[str]:
    """Ids by (sort key, id), the id ascending in both directions (the tiebreaker)."""
    ordered = sorted(keys)
    ordered.sort(key=lambda rid: keys[rid], reverse=(sort == "-date"))
    return ordered


@pytest.mark.parametrize("sort", [None, "date", "-date"])
@pytest.mark.parametrize("count", [1, 7, 50, 119, 120, 500])
def test_pages_neither_repeat_nor_skip_under_concurrent_inserts(
    store: Store, sort: str | None, count: int
) -> None:
    stored = [_add(store, n) for n in range(120)]
    keys = {rid: (updated if sort is None else _date(n) or "")
            for n, (rid, updated) in enumerate(stored)}
    _add(store, 0, patient="Patient/p2")  # another patient's: never on these pages
    seen: list[str] = []
    after = None
    for page in range(1000):
        with store.transaction() as conn:
            found, after = repository.search_page(conn, "Observation", [PATIENT], sort, count,
                                                  after)
        assert len(found) <= count
        seen += [r["id"] for r in found]
        if after is None:
            break
        if page < 30:  # concurrent writers: earlier, equal, later and missing sort dates
            for extra in ("2025-12-31T00:00:00", "2026-01-08T09:00:00", "2027-01-01T00:00:00"):
                _add(store, 1, sort_date=extra)
            _add(store, 0)
    assert after is None, "paging never ended"
    assert len(seen) == len(set(seen)), "a resource was served twice"
    kept = [rid for rid in seen if rid in keys]
    assert kept == _expected_order(keys, sort), "skipped or out of order"
    with store.transaction() as conn:
        mine = {r["id"] for r in repository.search(conn, "Observation", [PATIENT])}
    assert set(seen) <= mine, "a page held another patient's resource"


def test_a_page_says_whether_more_follow(store: Store) -> None:
    stored = [_add(store, n) for n in range(3)]
    # Two inserts within one timestamp tick tie on lastUpdated; the id breaks the tie.
    ids = _expected_order(dict(stored), None)
    with store.transaction() as conn:
        exact, after_exact = repository.search_page(conn, "Observation", [PATIENT], None, 3)
        short, after_short = repository.search_page(conn, "Observation", [PATIENT], None, 2)
    assert [r["id"] for r in exact] == ids and after_exact is None
    assert [r["id"] for r in short] == ids[:2]
    assert after_short is not None and after_short[1] == ids[1]


def test_the_unbounded_search_still_reads_everything(store: Store) -> None:
    """Use cases (a patient's score history) read all they need; only HTTP pages are bounded."""
    for n in range(620):
        _add(store, n)
    with store.transaction() as conn:
        assert len(repository.search(conn, "Observation", [PATIENT], sort="date")) == 620
