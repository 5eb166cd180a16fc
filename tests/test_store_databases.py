"""The store on this run's database (SQLite or PostgreSQL): error mapping, schema, reconnects.

Store.transaction answers a database that cannot be reached, or a transaction the server
aborted (lock timeout, deadlock, a killed connection), with 503, and a unique-key race with
409, whichever driver raised it. The PostgreSQL-only tests check what only PostgreSQL has:
the per-test schema the suite runs in, and connections the server closes under the pool.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, inspect, select, text

from mit_fhir.errors import Conflict, ServiceUnavailable
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.store import repository
from mit_fhir.store.migrate import is_current, upgrade
from mit_fhir.store.repository import Store
from mit_fhir.store.schema import resource
from tests.conftest import POSTGRES_URL, on_postgresql, schema_of
from tests.servers.fixtures import free_port

postgresql_only = pytest.mark.skipif(not on_postgresql(),
                                     reason="PostgreSQL only: this run's store is SQLite")


@pytest.fixture
def store(database_url: str) -> Any:
    s = Store(database_url)
    upgrade(s.engine)
    yield s
    s.dispose()


def plan() -> dict[str, Any]:
    return {"resourceType": "CarePlan", "status": "active", "intent": "plan"}


def test_migrations_are_current_and_idempotent(store: Store) -> None:
    assert is_current(store.engine)
    upgrade(store.engine)
    assert is_current(store.engine)
    with store.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert {"alembic_version", "resource", "search_index", "licensed_wording", "outbox",
            "sync_link"} <= tables


def test_a_second_business_key_is_a_409_and_stores_nothing(store: Store) -> None:
    with store.transaction() as conn:
        repository.insert(conn, plan(), [], business_key="Patient/a|crisis")
    with pytest.raises(Conflict), store.transaction() as conn:
        repository.insert(conn, plan(), [("subject", "Patient/a")],
                          business_key="Patient/a|crisis")
    with store.transaction() as conn:
        assert len(conn.execute(select(resource.c.id)).all()) == 1


def test_a_concurrent_business_key_race_is_a_409(store: Store) -> None:
    """Two transactions insert the same key; the second waits for the first, then conflicts."""
    first_inserted, release = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def first() -> None:
        with store.transaction() as conn:
            repository.insert(conn, plan(), [], business_key="Patient/b|crisis")
            first_inserted.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    assert first_inserted.wait(10)

    def second() -> None:
        try:
            with store.transaction() as conn:
                repository.insert(conn, plan(), [], business_key="Patient/b|crisis")
        except (Conflict, ServiceUnavailable) as exc:
            outcome["error"] = exc

    racer = threading.Thread(target=second)
    racer.start()
    racer.join(0.5)  # blocked on the first one's uncommitted key (or its write lock)
    release.set()
    thread.join(10)
    racer.join(10)
    # PostgreSQL waits on the unique index and then refuses: 409. SQLite serialises writers
    # and the second insert meets the committed key: 409 as well (a busy timeout would be 503).
    assert isinstance(outcome.get("error"), Conflict), outcome


def test_an_unreachable_database_is_a_503(tmp_path: Path) -> None:
    if on_postgresql():
        url = f"postgresql+psycopg://root@127.0.0.1:{free_port()}/test?connect_timeout=2"
    else:
        url = f"sqlite:///{tmp_path / 'no-such-dir' / 'x.sqlite3'}"
    store = Store(url)
    try:
        with pytest.raises(ServiceUnavailable), store.transaction() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        store.dispose()


# PostgreSQL only --------------------------------------------------------------------------------
@postgresql_only
def test_every_table_lands_in_the_tests_own_schema(store: Store, database_url: str) -> None:
    schema = schema_of(database_url)
    assert schema and schema.startswith("t_")
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT current_schema()")).scalar() == schema
        tables = set(conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": schema}).scalars())
        public = set(conn.execute(
            text("SELECT table_name FROM information_schema.tables "
                 "WHERE table_schema = 'public'")).scalars())
    assert {"alembic_version", "resource", "outbox", "sync_link"} <= tables
    assert not ({"alembic_version", "resource", "outbox"} & public)


@postgresql_only
def test_the_store_pings_pooled_connections(store: Store) -> None:
    assert store.engine.pool._pre_ping  # no public accessor


@postgresql_only
def test_a_connection_the_server_closed_is_replaced(store: Store) -> None:
    """pool_pre_ping: after a server restart or an idle-connection kill, the next request
    gets a fresh connection instead of a 503."""
    with store.transaction() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    finally:
        admin.dispose()
    with store.transaction() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid


@postgresql_only
def test_a_lock_timeout_is_a_503(store: Store) -> None:
    """A transaction the server aborts (here: lock_timeout) is transient: retry later."""
    with store.transaction() as conn:
        repository.insert(conn, {**plan(), "id": "locked"}, [])
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction() as conn:
            conn.execute(text("SELECT 1 FROM resource WHERE id = 'locked' FOR UPDATE"))
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    try:
        with pytest.raises(ServiceUnavailable), store.transaction() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '100ms'"))
            conn.execute(text("UPDATE resource SET version_id = 2 WHERE id = 'locked'"))
    finally:
        release.set()
        thread.join(10)


@postgresql_only
def test_replicas_starting_together_migrate_once(database_url: str) -> None:
    """Start-up migrations of several replicas on one empty database take turns."""
    stores = [Store(database_url) for _ in range(4)]
    errors: list[BaseException] = []

    def migrate(s: Store) -> None:
        try:
            upgrade(s.engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        assert all(is_current(s.engine) for s in stores)
    finally:
        for s in stores:
            s.dispose()


def _query_plan(conn: Any, statement: Any, params: dict[str, str]) -> str:
    """The database's plan for a statement, as text (EXPLAIN QUERY PLAN / EXPLAIN)."""
    compiled = statement.compile(dialect=conn.dialect)
    values = {**compiled.params, **params}
    args: Any = tuple(values[k] for k in compiled.positiontup) if compiled.positiontup else values
    prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
    return "\n".join(str(row) for row in conn.exec_driver_sql(prefix + str(compiled), args))


def test_a_history_search_probes_each_candidates_own_rows(store: Store) -> None:
    """Only the patient criterion reads ix_search_lookup; code, date and status are checked
    in each candidate's own rows (ix_search_owner_name), not by reading every row of that
    parameter for each candidate. SQLite plans without statistics; PostgreSQL is asked after
    ANALYZE, as autovacuum leaves a running database (without any statistics its plans are
    guesses)."""
    with store.transaction() as conn:
        for n in range(600):
            repository.insert(conn, {"resourceType": "Observation"}, [
                ("patient", f"Patient/p{n % 50}"), ("code", "http://loinc.org|44261-6"),
                ("date", f"2024-01-{n % 28 + 1:02d}T00:00:00"), ("status:code", "final")])
    criteria = [
        Criterion("patient", "eq", ("Patient/p7",)),
        Criterion("code", "eq", ("http://loinc.org|44261-6", "http://loinc.org|x")),
        Criterion("date", "lt", ("2024-02-01T00:00:00",)),
        Criterion("status:code", "eq", ("final",)),
    ]
    if on_postgresql():
        with store.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
    with store.transaction() as conn:
        assert len(repository.search(conn, "Observation", criteria, sort="date")) == 12
        plan = _query_plan(conn, *repository.search_statement(
            "Observation", criteria, sort="date"))
    assert plan.count("ix_search_lookup") == 1, plan
    assert plan.count("ix_search_owner_name") == 3, plan


def test_serialize_waits_for_a_concurrent_holder_of_the_key(store: Store) -> None:
    """Two submissions for one patient: the second reads the patient's scores only after the
    first has committed, so it counts them (on SQLite by the writer lock, on PostgreSQL by an
    advisory lock on the key)."""
    held, committing_at = threading.Event(), []
    seen: list[int] = []

    def first() -> None:
        with store.transaction() as conn:
            repository.serialize(conn, "scores:Patient/p1")
            repository.insert(conn, plan(), [("subject", "Patient/p1")])
            held.set()
            time.sleep(0.5)
            committing_at.append(time.monotonic())  # the lock is held until the commit after

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(10)
    with store.transaction() as conn:
        repository.serialize(conn, "scores:Patient/p1")
        waited_until = time.monotonic()
        seen.append(len(repository.search(
            conn, "CarePlan", [Criterion("subject", "eq", ("Patient/p1",))])))
    thread.join()
    assert waited_until >= committing_at[0], "the second went on while the first held the key"
    assert seen == [1], "what the first committed is visible after the wait"


def test_read_many_looks_resources_up_by_key(store: Store) -> None:
    """The sync worker loads its claimed resources with read_many: every pair that exists,
    across types, and on SQLite by primary key rather than by scanning the table."""
    with store.transaction() as conn:
        plans = [repository.insert(conn, plan(), []) for _ in range(30)]
        obs = repository.insert(conn, {"resourceType": "Observation", "status": "final"}, [])
    keys = [("CarePlan", p["id"]) for p in plans[:3]] + [("Observation", obs["id"]),
                                                           ("Observation", "missing")]
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        with store.transaction() as conn:
            found = repository.read_many(conn, keys)
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    assert sorted((r["resourceType"], r["id"]) for r in found) == sorted(keys[:4])
    if store.engine.dialect.name == "sqlite":
        with store.engine.connect() as conn:
            plans_text = [str(conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all())
                          for sql, params in statements if sql.lstrip().startswith("SELECT")]
        assert plans_text and not any("SCAN resource" in p for p in plans_text), plans_text
