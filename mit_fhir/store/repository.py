"""Resource repository: stores FHIR resources as JSON with their search-index rows."""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    String,
    and_,
    bindparam,
    delete,
    event,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from mit_fhir.errors import Conflict, InvalidRequest, PreconditionFailed, ServiceUnavailable
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.store.engine import create_store_engine
from mit_fhir.store.schema import resource, search_index
from mit_fhir.store.writer_lock import WriterLock

Resource = dict[str, Any]
log = logging.getLogger("mit_fhir.store")


def now_instant() -> str:
    """The current instant as FHIR `instant` text in UTC."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    """A fresh logical id."""
    return str(uuid.uuid4())


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers proceed during a write; foreign keys are off by default in SQLite.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


class Store:
    """Owns the engine; every write happens inside `transaction()`."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_store_engine(url)
        self.writer_lock: WriterLock | None = None
        if self.engine.url.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            database = self.engine.url.database
            if database and database != ":memory:" and not database.startswith("file:"):
                self.writer_lock = WriterLock(database)
                _WRITER_LOCKS[self.engine] = self.writer_lock
                event.listen(self.engine, "before_cursor_execute", self.writer_lock.before_execute)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One database transaction: everything inside commits together or not at all."""
        try:
            if self.writer_lock is None:
                with self.engine.begin() as conn:
                    yield conn
                return
            self.writer_lock.begin()
            try:
                with self.engine.begin() as conn:
                    yield conn
            finally:
                self.writer_lock.end()  # after the commit or rollback
        except OperationalError as exc:
            # The driver's error class and code only: its message may quote the statement.
            code = getattr(exc.orig, "sqlite_errorname", None) or getattr(exc.orig, "sqlstate", "")
            log.warning("database unavailable: %s %s", type(exc.orig).__name__, code or "")
            raise ServiceUnavailable("the database is unavailable; retry later") from exc
        except IntegrityError:
            # Two requests created the same business key at once: nothing was stored by this
            # one, and submitting again will find the other's data.
            raise Conflict("a concurrent request stored the same record; submit again") from None
        except DataError:
            # The database refused a value (PostgreSQL: a NUL character, or text longer than an
            # indexed column): the client's input, not a fault of the service. Nothing was stored.
            raise InvalidRequest(
                "a value cannot be stored or searched (a NUL character, or too long)") from None

    def dispose(self) -> None:
        self.engine.dispose()


def serialize(conn: Connection, key: str) -> None:
    """Until this transaction ends, make concurrent transactions that serialize on the same key
    wait; what they committed before is visible to this one's reads that follow.

    PostgreSQL: a transaction-scoped advisory lock on the key's hash (READ COMMITTED: each
    statement after it sees what the previous holder committed). SQLite: the writer lock,
    taken now rather than at the first write (one writer for every key).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_ADVISORY_LOCK, {"key": key})
        return
    lock = _WRITER_LOCKS.get(conn.engine)
    if lock is not None:
        lock.hold()


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
_WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, WriterLock] = weakref.WeakKeyDictionary()


def _index_rows(res: Resource, index: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [
        {"resource_type": res["resourceType"], "resource_id": res["id"], "name": n, "value": v}
        for n, v in dict.fromkeys(index)
    ]


_INSERT_RESOURCE = resource.insert()


def insert(
    conn: Connection,
    res: Resource,
    index: Iterable[tuple[str, str]],
    sort_date: str | None = None,
    business_key: str | None = None,
) -> Resource:
    """Store a new resource (id assigned when absent) with version 1 and its index rows."""
    res.setdefault("id", new_id())
    meta = res.setdefault("meta", {})
    meta["versionId"] = "1"
    meta["lastUpdated"] = now_instant()
    row = {"resource_type": res["resourceType"], "id": res["id"], "version_id": 1,
           "last_updated": meta["lastUpdated"], "sort_date": sort_date,
           "content": orjson.dumps(res).decode(), "business_key": business_key}
    rows = _index_rows(res, index)
    buffer: InsertBuffer | None = conn.info.get(_BUFFER)
    if buffer is not None:
        buffer.resources.append(row)
        buffer.index.extend(rows)
        return res
    # One prebuilt statement with parameters (not .values(), which builds a new statement per
    # row): a submission inserts several resources, and this is its request path.
    conn.execute(_INSERT_RESOURCE, row)
    if rows:
        conn.execute(search_index.insert(), rows)
    return res


_BUFFER = "mit_fhir.insert_buffer"


@dataclass
class InsertBuffer:
    """Rows `insert` holds back while buffering, written in two statements by `flush`."""

    resources: list[dict[str, Any]] = field(default_factory=list)
    index: list[dict[str, str]] = field(default_factory=list)

    def flush(self, conn: Connection) -> None:
        if self.resources:
            conn.execute(resource.insert(), self.resources)
        if self.index:
            conn.execute(search_index.insert(), self.index)
        self.resources, self.index = [], []


@contextmanager
def buffered_inserts(conn: Connection) -> Iterator[InsertBuffer]:
    """Within the block `insert` only collects rows (one round trip per table at the end).

    Nothing inserted in the block can be read back before a flush (see `unbuffered`).
    """
    buffer = InsertBuffer()
    # The dict itself, not conn.info again on the way out: after a lost connection conn.info
    # raises PendingRollbackError, which would hide the OperationalError (a 503) behind a 500.
    info = conn.info
    info[_BUFFER] = buffer
    try:
        yield buffer
        buffer.flush(conn)
    finally:
        info.pop(_BUFFER, None)


@contextmanager
def unbuffered(conn: Connection) -> Iterator[None]:
    """Flush any buffer and write directly within the block (code that reads what it wrote)."""
    info = conn.info  # as in buffered_inserts
    buffer: InsertBuffer | None = info.pop(_BUFFER, None)
    if buffer is None:
        yield
        return
    buffer.flush(conn)
    try:
        yield
    finally:
        info[_BUFFER] = buffer


def update(
    conn: Connection,
    res: Resource,
    index: Iterable[tuple[str, str]],
    expected_version: int,
    sort_date: str | None = None,
) -> Resource:
    """Store the next version of an existing resource; PreconditionFailed if it moved on."""
    new_version = expected_version + 1
    meta = res.setdefault("meta", {})
    meta["versionId"] = str(new_version)
    meta["lastUpdated"] = now_instant()
    changed = conn.execute(
        resource.update()
        .where(
            resource.c.resource_type == res["resourceType"],
            resource.c.id == res["id"],
            resource.c.version_id == expected_version,
        )
        .values(
            version_id=new_version,
            last_updated=meta["lastUpdated"],
            sort_date=sort_date,
            content=orjson.dumps(res).decode(),
        )
    ).rowcount
    if changed != 1:
        raise PreconditionFailed(
            f"{res['resourceType']}/{res['id']} is no longer at version {expected_version}"
        )
    conn.execute(
        delete(search_index).where(
            search_index.c.resource_type == res["resourceType"],
            search_index.c.resource_id == res["id"],
        )
    )
    rows = _index_rows(res, index)
    if rows:
        conn.execute(search_index.insert(), rows)
    return res


def read_by_key(conn: Connection, resource_type: str, business_key: str) -> Resource | None:
    """The current version of the resource with this business key, or None."""
    row = conn.execute(
        select(resource.c.content).where(
            resource.c.resource_type == resource_type, resource.c.business_key == business_key
        )
    ).first()
    return orjson.loads(row[0]) if row else None


def like_escape(text: str) -> str:
    """Text made literal inside a LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def read_by_key_prefix(
    conn: Connection, resource_type: str, prefix: str
) -> list[tuple[str, Resource]]:
    """(business key, current version) of the resources whose key starts with `prefix`."""
    rows = conn.execute(
        select(resource.c.business_key, resource.c.content).where(
            resource.c.resource_type == resource_type,
            resource.c.business_key.like(like_escape(prefix) + "%", escape="\\"),
        ).order_by(resource.c.business_key)
    )
    return [(row[0], orjson.loads(row[1])) for row in rows]


def read(conn: Connection, resource_type: str, rid: str) -> Resource | None:
    """The current version of a resource, or None."""
    row = conn.execute(
        select(resource.c.content).where(
            resource.c.resource_type == resource_type, resource.c.id == rid
        )
    ).first()
    return orjson.loads(row[0]) if row else None


def read_many(conn: Connection, keys: list[tuple[str, str]]) -> list[Resource]:
    """Current versions of the (type, id) pairs that exist, one query per type.

    `type = ? AND id IN (...)` is a primary-key lookup per id; a tuple IN made SQLite scan the
    whole resource table (every sync round read all stored resources to load a few hundred).
    """
    ids: dict[str, list[str]] = {}
    for rtype, rid in keys:
        ids.setdefault(rtype, []).append(rid)
    found: list[Resource] = []
    for rtype, wanted in ids.items():
        rows = conn.execute(select(resource.c.content).where(
            resource.c.resource_type == rtype, resource.c.id.in_(wanted)))
        found += [orjson.loads(row[0]) for row in rows]
    return found


def _bound(crit: Criterion, value: str) -> str:
    """The parameter bound for one value of a criterion (a LIKE pattern for the like ops)."""
    if crit.op == "like-suffix":
        return "%" + like_escape(value)
    if crit.op == "like-prefix":
        return like_escape(value) + "%"
    return value


def _value_test(crit: Criterion, names: Sequence[str],
                col: ColumnElement[str] = search_index.c.value) -> ColumnElement[bool]:
    """The criterion's test on col, with its values as the bind parameters `names`."""
    tests: list[ColumnElement[bool]] = []
    values: list[BindParameter[str]] = [bindparam(n, type_=String) for n in names]
    if crit.op == "between":
        pairs = zip(values[::2], values[1::2], strict=True)
        tests.extend(and_(col >= low, col <= high) for low, high in pairs)
    for v in values if crit.op != "between" else ():
        if crit.op == "eq":
            tests.append(col == v)
        elif crit.op == "lt":
            tests.append(col < v)
        elif crit.op == "le":
            tests.append(col <= v)
        elif crit.op == "gt":
            tests.append(col > v)
        elif crit.op == "ge":
            tests.append(col >= v)
        elif crit.op in ("like-suffix", "like-prefix"):
            tests.append(col.like(v, escape="\\"))
        else:  # pragma: no cover - programming error
            raise ValueError(crit.op)
    return or_(*tests)


def _condition(resource_type: str, crit: Criterion, names: Sequence[str]) -> ColumnElement[bool]:
    """The resource has an index row satisfying crit: a probe of its own rows.

    Name and value are compared through coalesce() (a no-op: both are NOT NULL) so that
    ix_search_lookup cannot serve the probe: SQLite (which has no statistics) for a range
    criterion (date=lt...), and PostgreSQL on tables not yet analysed for any, would otherwise
    read every row of that parameter for each candidate resource (11 ms instead of 0.5 ms for
    a patient's history among 2,400 Observations, and growing with the table) instead of the
    resource's own rows in ix_search_owner_name.
    """
    return (
        select(search_index.c.resource_id)
        .where(
            search_index.c.resource_type == resource_type,
            search_index.c.resource_id == resource.c.id,
            func.coalesce(search_index.c.name, "") == crit.name,
            _value_test(crit, names, func.coalesce(search_index.c.value, "")),
        )
        .exists()
    )


def _driver(resource_type: str, crit: Criterion, names: Sequence[str]) -> ColumnElement[bool]:
    """The ids matching an equality criterion, read from ix_search_lookup (not a table scan)."""
    return resource.c.id.in_(
        select(search_index.c.resource_id).where(
            search_index.c.resource_type == resource_type,
            search_index.c.name == crit.name,
            _value_test(crit, names),
        )
    )


# A search's shape: the type, each criterion's name, op and number of values, sort and limit.
Shape = tuple[str, tuple[tuple[str, str, int], ...], str | None, int | None]


def _filtered(resource_type: str, criteria: Sequence[tuple[str, str, int]],
              *columns: ColumnElement[Any]) -> Select[Any]:
    """`columns` of the resources of a type satisfying criteria shaped (name, op, count)."""
    shaped = [Criterion(name, op, ("",) * n) for name, op, n in criteria]
    query = select(*columns).where(resource.c.resource_type == resource_type)
    # The patient is the most selective criterion the service searches by (a token's patient
    # context adds it last); else the first equality criterion drives.
    equalities = [c for c in shaped if c.op == "eq"]
    driver = next((c for c in equalities if c.name in ("patient", "subject")),
                  equalities[0] if equalities else None)
    for i, crit in enumerate(shaped):
        names = [f"v{i}_{j}" for j in range(len(crit.values))]
        if crit is driver:
            query = query.where(_driver(resource_type, crit, names))
        else:
            query = query.where(_condition(resource_type, crit, names))
    return query


@lru_cache(maxsize=512)
def _statement(shape: Shape) -> Select[Any]:
    """The search statement of a shape, its values left as bind parameters v<i>_<j>.

    Built once per shape: building SQLAlchemy expressions costs more than running the query,
    and a submission searches twice (its identifier, the patient's earlier scores).
    """
    resource_type, criteria, sort, limit = shape
    query = _filtered(resource_type, criteria, resource.c.content)
    if sort == "date":
        query = query.order_by(resource.c.sort_date.asc(), resource.c.id)
    elif sort == "-date":
        query = query.order_by(resource.c.sort_date.desc(), resource.c.id)
    else:
        query = query.order_by(resource.c.last_updated, resource.c.id)
    if limit is not None:
        query = query.limit(limit)
    return query


def _sort_column(sort: str | None) -> ColumnElement[str]:
    """The key a page is ordered and resumed by. A missing date sorts as "" (first ascending,
    last descending) on both databases: SQLite and PostgreSQL place NULLs at opposite ends,
    and a NULL cannot be compared with the cursor's value at all."""
    if sort in ("date", "-date"):
        return func.coalesce(resource.c.sort_date, "")
    return resource.c.last_updated


@lru_cache(maxsize=512)
def _page_statement(shape: Shape, resume: bool) -> Select[Any]:
    """The statement of one page: `limit` rows after the bind parameters after_key/after_id.

    Keyset paging on (sort key, id), the id ascending as the tiebreaker in both directions.
    """
    resource_type, criteria, sort, limit = shape
    key = _sort_column(sort)
    query = _filtered(resource_type, criteria, resource.c.content, resource.c.id, key)
    if resume:
        after_key, after_id = bindparam("after_key", type_=String), bindparam("after_id",
                                                                              type_=String)
        beyond = key < after_key if sort == "-date" else key > after_key
        query = query.where(or_(beyond, and_(key == after_key, resource.c.id > after_id)))
    order = key.desc() if sort == "-date" else key.asc()
    return query.order_by(order, resource.c.id.asc()).limit(limit)


def search_page(
    conn: Connection,
    resource_type: str,
    criteria: Sequence[Criterion],
    sort: str | None,
    count: int,
    after: tuple[str, str] | None = None,
) -> tuple[list[Resource], tuple[str, str] | None]:
    """At most `count` matches after the position `after` (sort value, id), and the position
    of the last one when more follow (else None). The HTTP searches page through this; use
    cases that need a patient's whole history call `search`."""
    shape = (resource_type, tuple((c.name, c.op, len(c.values)) for c in criteria), sort,
             count + 1)  # one more than the page: whether a next page exists, without a count
    params = {f"v{i}_{j}": _bound(crit, v)
              for i, crit in enumerate(criteria) for j, v in enumerate(crit.values)}
    if after is not None:
        params["after_key"], params["after_id"] = after
    rows = conn.execute(_page_statement(shape, after is not None), params).all()
    found = [orjson.loads(row[0]) for row in rows[:count]]
    more = len(rows) > count
    return found, ((rows[count - 1][2], rows[count - 1][1]) if more else None)


def search(
    conn: Connection,
    resource_type: str,
    criteria: Sequence[Criterion],
    sort: str | None = None,
    limit: int | None = None,
) -> list[Resource]:
    """Every resource of a type matching every criterion; sort "date" / "-date" by sort_date.

    Unbounded, for use cases that must read all they need (a patient's score history); HTTP
    searches go through `search_page`.

    The first equality criterion selects the candidates through the index (put the most
    selective first: the patient); the others are checked per candidate. Without one, every
    resource of the type is checked.
    """
    statement, params = search_statement(resource_type, criteria, sort, limit)
    return [orjson.loads(row[0]) for row in conn.execute(statement, params)]


def search_statement(
    resource_type: str,
    criteria: Sequence[Criterion],
    sort: str | None = None,
    limit: int | None = None,
) -> tuple[Select[Any], dict[str, str]]:
    """The statement `search` runs, and its parameters."""
    shape = (resource_type, tuple((c.name, c.op, len(c.values)) for c in criteria), sort, limit)
    params = {f"v{i}_{j}": _bound(crit, v)
              for i, crit in enumerate(criteria) for j, v in enumerate(crit.values)}
    return _statement(shape), params
