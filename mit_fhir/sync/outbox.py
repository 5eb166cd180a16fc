"""The transactional outbox: rows written with the data, claimed under a lease, then settled.

States: pending -> sent; pending -> failed (a 4xx retrying cannot fix, or too many attempts);
pending -> conflict (412: edited in the EHR); pending -> superseded (a newer version of the same
resource was queued; only the newest needs sending). `requeue` puts failed and conflict rows back.
Claims are leases (lease_until), so a worker killed mid-batch loses nothing: its rows become
claimable again when the lease runs out. On PostgreSQL the claim also takes row locks with
SKIP LOCKED so concurrent workers never pick the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Integer, and_, bindparam, func, or_, select, update

from mit_fhir.store.schema import outbox

STATES = ("pending", "sent", "failed", "conflict", "superseded")


@dataclass(frozen=True)
class Item:
    """One claimed outbox row."""

    id: int
    resource_type: str
    resource_id: str
    version_id: int
    attempts: int
    claims: int = 1

    @property
    def maybe_delivered(self) -> bool:
        """Whether an earlier attempt may have reached the EHR (crash, timeout, failure)."""
        return self.claims > 1 or self.attempts > 0


def enqueue(conn: Connection, resources: Iterable[dict[str, Any]], now: float) -> int:
    """Queue the current version of each resource, superseding older queued versions."""
    rows = []
    for res in resources:
        rtype, rid = res["resourceType"], res["id"]
        conn.execute(
            update(outbox)
            .where(outbox.c.resource_type == rtype, outbox.c.resource_id == rid,
                   outbox.c.state == "pending", outbox.c.lease_until.is_(None))
            .values(state="superseded", updated_at=now)
        )
        rows.append({
            "resource_type": rtype, "resource_id": rid,
            "version_id": int(res["meta"]["versionId"]), "state": "pending", "attempts": 0,
            "created_at": now, "next_attempt_at": now, "updated_at": now,
        })
    if rows:
        conn.execute(outbox.insert(), rows)
    return len(rows)


def claim(conn: Connection, worker: str, limit: int, now: float, lease: float) -> list[Item]:
    """Lease up to `limit` due rows, oldest first."""
    due = and_(
        outbox.c.state == "pending",
        outbox.c.next_attempt_at <= now,
        or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now),
    )
    query = select(outbox.c.id).where(due).order_by(outbox.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = [row[0] for row in conn.execute(query)]
    if not ids:
        return []
    conn.execute(
        update(outbox).where(outbox.c.id.in_(ids), due)
        .values(lease_until=now + lease, leased_by=worker, updated_at=now,
                claims=outbox.c.claims + 1)
    )
    rows = conn.execute(
        select(outbox.c.id, outbox.c.resource_type, outbox.c.resource_id, outbox.c.version_id,
               outbox.c.attempts, outbox.c.claims)
        .where(outbox.c.id.in_(ids), outbox.c.leased_by == worker,
               outbox.c.lease_until == now + lease)
        .order_by(outbox.c.id)
    ).all()
    return [Item(*row) for row in rows]


def sent_many(conn: Connection, ids: list[int], now: float, worker: str | None = None) -> None:
    """Settle delivered rows in one statement, recording the worker that delivered them."""
    if ids:
        conn.execute(
            update(outbox).where(outbox.c.id.in_(ids))
            .values(state="sent", last_status=None, last_error=None, lease_until=None,
                    leased_by=None, delivered_by=worker, updated_at=now)
        )


@dataclass(frozen=True)
class Unsent:
    """How a claimed row that was not delivered is released; None leaves a column as it is."""

    id: int
    state: str | None = None
    attempts: int | None = None
    next_attempt_at: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    unclaim: bool = False  # the row was never sent: its claim does not count (see unreached)


def later(item: Item, now: float, delay: float) -> Unsent:
    """Release without counting an attempt (e.g. waiting for a dependency to be synced)."""
    return Unsent(item.id, next_attempt_at=now + delay)


def retry(
    item: Item, now: float, delay: float, status: int, error: str, max_attempts: int
) -> Unsent:
    """Count an attempt; park the row as failed once attempts run out."""
    attempts = item.attempts + 1
    return Unsent(item.id, "failed" if attempts >= max_attempts else "pending", attempts,
                  now + delay, status, error)


def unreached(item: Item, now: float, delay: float, status: int, error: str) -> Unsent:
    """Release a row the round never sent (the EHR could not be reached before any request):
    no attempt is counted and the claim is undone, so its creates stay plain, not conditional."""
    return Unsent(item.id, next_attempt_at=now + delay, last_status=status, last_error=error,
                  unclaim=True)


def park(item: Item, state: str, status: int, error: str) -> Unsent:
    """Settle as failed or conflict at once (no retry)."""
    return Unsent(item.id, state, item.attempts + 1, None, status, error)


def unsent_many(conn: Connection, rows: list[Unsent], now: float) -> None:
    """Release rows that were not delivered, in one executemany."""
    if not rows:
        return
    keep = {name: func.coalesce(bindparam(f"new_{name}", type_=outbox.c[name].type),
                                outbox.c[name])
            for name in ("state", "attempts", "next_attempt_at", "last_status", "last_error")}
    conn.execute(
        update(outbox).where(outbox.c.id == bindparam("row_id"))
        .values(lease_until=None, leased_by=None, updated_at=now,
                claims=outbox.c.claims - bindparam("unclaim", type_=Integer), **keep),
        [{"row_id": r.id, "new_state": r.state, "new_attempts": r.attempts,
          "new_next_attempt_at": r.next_attempt_at, "new_last_status": r.last_status,
          "new_last_error": r.last_error, "unclaim": int(r.unclaim)} for r in rows],
    )


def requeue(conn: Connection, now: float, ids: Iterable[int] | None = None) -> int:
    """Put failed and conflict rows (all, or the given ids) back in the queue."""
    query = update(outbox).where(outbox.c.state.in_(("failed", "conflict")))
    if ids is not None:
        query = query.where(outbox.c.id.in_(list(ids)))
    # claims is kept: a re-queued row may have reached the EHR, so its creates stay conditional.
    result = conn.execute(query.values(state="pending", attempts=0, next_attempt_at=now,
                                       lease_until=None, leased_by=None, updated_at=now))
    return int(result.rowcount)


def error_summary(status: int, outcome: dict[str, Any] | None, message: str) -> str:
    """What is kept of an EHR error: status, issue severities and codes, and our own message.

    The EHR's diagnostics text is not kept: servers echo resource content into it, and this
    field is shown by /sync/status.
    """
    issues = [
        {"severity": i.get("severity"), "code": i.get("code")}
        for i in (outcome or {}).get("issue", [])[:5]
    ]
    return json.dumps({"status": status, "message": message, "issues": issues})


def status(conn: Connection, now: float, limit: int = 50) -> dict[str, Any]:
    """Counts by state, the oldest pending age, and the last error of parked rows."""
    counts = dict.fromkeys(STATES, 0)
    for state, count in conn.execute(
        select(outbox.c.state, func.count()).group_by(outbox.c.state)
    ):
        counts[state] = int(count)
    oldest = conn.execute(
        select(func.min(outbox.c.created_at)).where(outbox.c.state == "pending")
    ).scalar()
    parked = conn.execute(
        select(outbox.c.id, outbox.c.resource_type, outbox.c.resource_id, outbox.c.state,
               outbox.c.attempts, outbox.c.last_status, outbox.c.last_error, outbox.c.updated_at)
        .where(outbox.c.state.in_(("failed", "conflict")))
        .order_by(outbox.c.id.desc()).limit(limit)
    ).all()
    return {
        "counts": counts,
        "oldest_pending_age_seconds": None if oldest is None else round(now - oldest, 3),
        "problems": [
            {"id": r.id, "resource": f"{r.resource_type}/{r.resource_id}", "state": r.state,
             "attempts": r.attempts, "http_status": r.last_status,
             "error": json.loads(r.last_error) if r.last_error else None,
             "since_seconds": round(now - r.updated_at, 3)}
            for r in parked
        ],
    }
