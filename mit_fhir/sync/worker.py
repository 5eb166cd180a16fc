"""The sync worker: claims outbox rows, writes them to the EHR in transaction Bundles, settles them.

One round: lease a batch (oldest first), skip what the EHR already has, then send the rest in
transaction Bundles, in order, so that a resource and the resources that refer to it travel
together or the referenced one goes first. A row's first delivery creates plainly, in Bundles of
up to SYNC_BUNDLE_SIZE entries: nothing can exist in the EHR yet. Once a delivery may have
reached the EHR (a retry, or a row reclaimed after a crash or an expired lease: the claim is
counted in the database before anything is sent), creates are conditional on our business
identifier, in Bundles of up to SYNC_CONDITIONAL_BUNDLE_SIZE entries (conditional writes need
serializable isolation; Medplum refuses more than 8 such entries in one transaction). Every
Bundle also holds at most SYNC_BUNDLE_MAX_UPDATES updates (Medplum refuses more than 50) and
about SYNC_BUNDLE_MAX_BYTES of resources (Medplum's default body limit is 1 MB). A failed
transaction is retried whole when the failure is transient (network, 5xx, 408, 409, 429); when
the EHR rejects it (412 or another 4xx) the entries are replayed one by one so that only the
offending resource is parked, as a conflict (412) or failed (other 4xx), with the EHR's
OperationOutcome summarised. Where the EHR's CapabilityStatement lacks conditional create or an
identifier search for a type, the worker searches by identifier itself (filtering the results,
since some servers ignore filters they do not know) and then creates or updates with If-Match.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mit_fhir import metrics
from mit_fhir.ehr.client import Capabilities, EhrClient
from mit_fhir.ehr.errors import EhrConflict, EhrError, EhrRejected, EhrRetryable
from mit_fhir.fhir.references import patient_reference
from mit_fhir.store import repository
from mit_fhir.store.schema import sync_link
from mit_fhir.sync import outbox
from mit_fhir.sync.outbox import Item
from mit_fhir.sync.requests import (
    IMMUTABLE,
    Link,
    Unresolved,
    body,
    etag_version,
    identifier,
    identifier_patient,
    identifier_query,
    local_key,
    parse_location,
    references,
)

log = logging.getLogger("mit_fhir.sync")
Resource = dict[str, Any]
DEPENDENCY_WAIT = 2.0  # seconds before retrying a resource whose reference is not synced yet
SETTLE_INTERVAL = 1.0  # at most this long between writing results during a round
_UPSERTS: dict[str, Callable[[Any], Any]] = {"sqlite": sqlite.insert,
                                            "postgresql": postgresql.insert}


@dataclass(eq=False)
class Job:
    """A claimed row with the resource's current version and its remote link, if any."""

    item: Item
    resource: Resource
    link: Link | None
    # Set when a transaction holding this job failed: some servers (Medplum) keep the entries
    # written before the failing one, so the replay must not create plainly.
    replayed: bool = False

    @functools.cached_property
    def key(self) -> str:
        return local_key(self.resource)

    @functools.cached_property
    def refs(self) -> frozenset[str]:
        """The local resources this one refers to (computed once per round)."""
        return references(self.resource)

    @functools.cached_property
    def size(self) -> int:
        """Bytes of the resource as JSON: about what its Bundle entry adds to the request."""
        return len(orjson.dumps(self.resource))

    @property
    def version(self) -> int:
        return int(self.resource["meta"]["versionId"])


@dataclass
class Outcome:
    """What happened to one job; written to the database after each Bundle."""

    job: Job
    state: str  # sent | retry | unreached | failed | conflict | later | refresh
    link: Link | None = None
    error: EhrError | None = None


@dataclass(frozen=True)
class SyncSettings:
    """The SYNC_* settings the worker uses."""

    batch_size: int = 500
    bundle_size: int = 200
    conditional_bundle_size: int = 8
    bundle_max_updates: int = 50
    bundle_max_bytes: int = 768 * 1024
    max_attempts: int = 8
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    lease_seconds: float = 120.0
    poll_interval: float = 1.0

    @classmethod
    def from_config(cls, settings: dict[str, Any]) -> SyncSettings:
        return cls(
            batch_size=settings["SYNC_BATCH_SIZE"], bundle_size=settings["SYNC_BUNDLE_SIZE"],
            conditional_bundle_size=settings["SYNC_CONDITIONAL_BUNDLE_SIZE"],
            bundle_max_updates=settings["SYNC_BUNDLE_MAX_UPDATES"],
            bundle_max_bytes=settings["SYNC_BUNDLE_MAX_BYTES"],
            max_attempts=settings["SYNC_MAX_ATTEMPTS"], backoff_base=settings["SYNC_BACKOFF_BASE"],
            backoff_max=settings["SYNC_BACKOFF_MAX"], lease_seconds=settings["SYNC_LEASE_SECONDS"],
            poll_interval=settings["SYNC_POLL_INTERVAL"],
        )


def _chunks(jobs: list[Job], settings: SyncSettings) -> Iterator[list[Job]]:
    """Consecutive chunks within a Bundle's limits: entries (fewer once a create is
    conditional), updates and bytes. A resource larger than the byte limit travels alone."""
    chunk: list[Job] = []
    conditional, updates, size = False, 0, 0
    for job in jobs:
        needs = _needs_condition(job)
        limit = settings.conditional_bundle_size if conditional or needs else settings.bundle_size
        if chunk and (len(chunk) >= limit or size + job.size > settings.bundle_max_bytes
                      or (job.link is not None and updates >= settings.bundle_max_updates)):
            yield chunk
            chunk, conditional, updates, size = [], False, 0, 0
        chunk.append(job)
        conditional = conditional or needs
        updates += job.link is not None
        size += job.size
    if chunk:
        yield chunk


def _needs_condition(job: Job) -> bool:
    return job.link is None and (job.item.maybe_delivered or job.replayed)


class Worker:
    """Drains the outbox into one EHR."""

    def __init__(
        self,
        store: repository.Store,
        client: EhrClient,
        settings: SyncSettings,
        worker_id: str | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self.clock = clock
        self.rand = rand
        self._learned: dict[str, str] = {}  # this round's deliveries, not yet written down
        self._unreachable = 0  # rounds in a row that could not read the EHR's metadata

    # The loop ---------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Work until `stop` is set; sleep only when there is nothing due."""
        while not stop.is_set():
            try:
                handled = self.run_once()
            except Exception:  # a bug or a database outage must not kill the worker loop
                log.exception("sync round failed")
                handled = 0
            if not handled:
                stop.wait(self.settings.poll_interval)

    def run_once(self) -> int:
        """One round; returns how many outbox rows it handled."""
        now = self.clock()
        with self.store.transaction() as conn:
            items = outbox.claim(conn, self.worker_id, self.settings.batch_size, now,
                                 self.settings.lease_seconds)
            jobs = _jobs(conn, items)
        if not jobs:
            return 0
        try:
            caps = self.client.capabilities()
        except EhrError as exc:
            # Nothing was sent: the rows wait (longer each round the EHR stays unreachable)
            # without counting an attempt or a claim, so their creates need no condition.
            self._unreachable += 1
            self._settle([Outcome(j, "unreached", error=exc) for j in jobs])
            return len(jobs)
        self._unreachable = 0
        done = [j for j in jobs if j.link and j.link.synced_version >= j.version]
        outcomes = [Outcome(j, "sent") for j in done]
        todo = [j for j in jobs if j not in done]
        self._learned = {}
        todo, found = self._find_existing(_dependencies_first(todo), caps)
        self._learn(found)
        outcomes += found
        # Results are written once a second rather than after every Bundle: a durable commit
        # costs more than sending 50 entries, and a delivery that is not yet recorded when the
        # worker dies is only sent again, conditionally (see the module docstring).
        last_settle = time.monotonic()
        for chunk in _chunks(todo, self.settings):
            sent = self._send(chunk, caps)
            self._learn(sent)
            outcomes += sent
            if time.monotonic() - last_settle >= SETTLE_INTERVAL:
                self._settle(outcomes)
                outcomes, last_settle = [], time.monotonic()
        self._settle(outcomes)
        return len(jobs)

    # Fallback: find what the EHR has where it cannot match identifiers itself ------------------
    def _learn(self, outcomes: list[Outcome]) -> None:
        """Remember where this round's deliveries landed, before they are written down."""
        for o in outcomes:
            if o.link is not None and o.state in ("sent", "refresh"):
                self._learned[o.job.key] = f"{o.job.resource['resourceType']}/{o.link.remote_id}"

    def _find_existing(
        self, jobs: list[Job], caps: Capabilities
    ) -> tuple[list[Job], list[Outcome]]:
        todo: list[Job] = []
        outcomes: list[Outcome] = []
        for job in jobs:
            rtype = job.resource["resourceType"]
            ident = identifier(job.resource)
            if ident is None or not _needs_condition(job) or _conditional(caps, rtype):
                todo.append(job)
                continue
            params = {"identifier": _token(ident), "_count": "100"}
            if (patient := identifier_patient(ident, job.resource)) is not None:
                params["patient"] = patient
            try:
                matches = [r for r in self.client.search(rtype, params)
                           if _has_identifier(r, ident) and _of_patient(r, patient)]
            except EhrError as exc:
                outcomes.append(Outcome(job, "retry", error=exc))
                continue
            if len(matches) > 1:
                outcomes.append(Outcome(job, "conflict", error=EhrConflict(
                    f"{rtype}: {len(matches)} resources in the EHR carry this identifier", 409)))
                continue
            if matches:
                remote = matches[0]
                version = remote.get("meta", {}).get("versionId")
                if rtype in IMMUTABLE:
                    outcomes.append(Outcome(job, "sent", Link(remote["id"], version, job.version)))
                    continue
                job.link = Link(remote["id"], version, 0)
            todo.append(job)
        return todo, outcomes

    # Sending -----------------------------------------------------------------------------------
    def _send(self, chunk: list[Job], caps: Capabilities) -> list[Outcome]:
        if not caps.transaction:
            return self._one_by_one(chunk, caps)
        ready, waiting, resolve = self._resolvable(chunk)
        outcomes = [Outcome(j, "later") for j in waiting]
        if not ready:
            return outcomes
        bundle = {"resourceType": "Bundle", "type": "transaction",
                  "entry": [self._entry(j, resolve, caps) for j in ready]}
        try:
            response = self.client.transaction(bundle)
        except EhrRetryable as exc:
            return outcomes + [Outcome(j, "retry", error=exc) for j in ready]
        except (EhrConflict, EhrRejected):
            # Replay one by one so that only the offending entry is parked; conditionally,
            # since a server may have kept the entries before the failing one.
            for job in ready:
                job.replayed = True
            replay, found = self._find_existing(ready, caps)
            return outcomes + found + self._one_by_one(replay, caps)
        entries = response.get("entry", [])
        if len(entries) != len(ready):
            mismatch = EhrRetryable("the transaction response does not match the request", 200)
            return outcomes + [Outcome(j, "retry", error=mismatch) for j in ready]
        for job, entry in zip(ready, entries, strict=True):
            resp = entry.get("response", {})
            outcomes.append(self._created(job, resp.get("status", ""), resp.get("location"),
                                          resp.get("etag"), entry.get("resource")))
        return outcomes

    def _resolvable(self, chunk: list[Job]) -> tuple[list[Job], list[Job], dict[str, str]]:
        """Split off jobs that refer to local resources neither linked nor in this chunk;
        return the others with the map that resolves their references."""
        outside = self._linked_targets(chunk)
        ready = list(chunk)
        while True:
            resolve = self._resolve_map(ready, outside)
            stuck = [j for j in ready if not j.refs <= resolve.keys()]
            if not stuck:
                return ready, [j for j in chunk if j not in ready], resolve
            ready = [j for j in ready if j not in stuck]

    @staticmethod
    def _resolve_map(jobs: list[Job], outside: dict[str, str]) -> dict[str, str]:
        """Local reference -> what to write instead: urn:uuid in this Bundle, or the EHR's id."""
        resolve = dict(outside)
        for job in jobs:
            if job.link:
                resolve[job.key] = f"{job.resource['resourceType']}/{job.link.remote_id}"
            else:
                resolve[job.key] = f"urn:uuid:{job.resource['id']}"
        return resolve

    def _linked_targets(self, jobs: list[Job]) -> dict[str, str]:
        """References to resources outside these jobs: the EHR's id when we synced them,
        unchanged when we do not hold them (the EHR's own resources); local but unsynced
        ones are left out, so the job waits for them."""
        keys = {k for j in jobs for k in j.refs}
        resolve = {k: self._learned[k] for k in keys if k in self._learned}
        keys -= resolve.keys()
        if not keys:
            return resolve
        with self.store.transaction() as conn:
            for key in keys:
                rtype, rid = key.split("/", 1)
                link = _link(conn, rtype, rid)
                if link is not None:
                    resolve[key] = f"{rtype}/{link.remote_id}"
                elif repository.read(conn, rtype, rid) is None:
                    resolve[key] = key
        return resolve

    def _entry(self, job: Job, resolve: dict[str, str], caps: Capabilities) -> Resource:
        rtype = job.resource["resourceType"]
        if job.link:
            request: Resource = {"method": "PUT", "url": f"{rtype}/{job.link.remote_id}"}
            if job.link.remote_version:
                request["ifMatch"] = f'W/"{job.link.remote_version}"'
            return {"fullUrl": self.client.url(f"{rtype}/{job.link.remote_id}"),
                    "resource": body(job.resource, resolve, job.link.remote_id, job.refs),
                    "request": request}
        request = {"method": "POST", "url": rtype}
        ident = identifier(job.resource)
        if ident and _needs_condition(job) and _conditional(caps, rtype):
            request["ifNoneExist"] = identifier_query(ident, job.resource)
        return {"fullUrl": f"urn:uuid:{job.resource['id']}",
                "resource": body(job.resource, resolve, None, job.refs), "request": request}

    def _one_by_one(self, chunk: list[Job], caps: Capabilities) -> list[Outcome]:
        outcomes: list[Outcome] = []
        resolve = self._linked_targets(chunk)
        for job in chunk:
            rtype = job.resource["resourceType"]
            try:
                if job.link:
                    payload = body(job.resource, resolve, job.link.remote_id, job.refs)
                    headers = ({"If-Match": f'W/"{job.link.remote_version}"'}
                               if job.link.remote_version else {})
                    resp = self.client.request("PUT", f"{rtype}/{job.link.remote_id}", payload,
                                               headers)
                else:
                    payload = body(job.resource, resolve, None, job.refs)
                    ident = identifier(job.resource)
                    headers = ({"If-None-Exist": identifier_query(ident, job.resource)}
                               if ident and _needs_condition(job) and _conditional(caps, rtype)
                               else {})
                    resp = self.client.request("POST", rtype, payload, headers)
            except Unresolved:
                outcomes.append(Outcome(job, "later"))
                continue
            except EhrRetryable as exc:
                outcomes.append(Outcome(job, "retry", error=exc))
                continue
            except EhrConflict as exc:
                mine = self._own_write(job, rtype, payload)
                outcomes.append(mine or Outcome(job, "conflict", error=exc))
                continue
            except EhrRejected as exc:
                outcomes.append(Outcome(job, "failed", error=exc))
                continue
            try:
                returned = self.client.json(resp) if resp.content else None
            except EhrRetryable as exc:  # written, but the answer is garbled: ask again later
                outcomes.append(Outcome(job, "retry", error=exc))
                continue
            outcome = self._created(job, str(resp.status_code), resp.headers.get("Location")
                                    or resp.headers.get("Content-Location"),
                                    resp.headers.get("ETag"), returned)
            outcomes.append(outcome)
            if outcome.link:
                resolve[job.key] = f"{rtype}/{outcome.link.remote_id}"
        return outcomes

    def _own_write(self, job: Job, rtype: str, payload: Resource) -> Outcome | None:
        """After a 412: is the EHR's copy exactly what we meant to write? Then it was our own
        write (a transaction the EHR did not roll back, or an answer that got lost)."""
        if job.link is None:
            return None
        try:
            remote = self.client.json(self.client.request("GET", f"{rtype}/{job.link.remote_id}"))
        except EhrError:
            return None
        strip = ("meta", "id", "text")
        if {k: v for k, v in remote.items() if k not in strip} != {
            k: v for k, v in payload.items() if k not in strip
        }:
            return None
        version = remote.get("meta", {}).get("versionId")
        return Outcome(job, "sent", Link(job.link.remote_id, version, job.version))

    def _created(self, job: Job, status: str, location: str | None, etag: str | None,
                 returned: Resource | None) -> Outcome:
        """Turn one successful write's response into the remote link."""
        remote_id, version = parse_location(location)
        if returned and returned.get("resourceType") == job.resource["resourceType"]:
            remote_id = remote_id or returned.get("id")
            version = version or returned.get("meta", {}).get("versionId")
        version = etag_version(etag) or version
        if remote_id is None and job.link:  # an update needs no Location: we named the id
            remote_id = job.link.remote_id
        if remote_id is None:
            exc = EhrRetryable("the EHR did not say where it stored the resource", 200)
            return Outcome(job, "retry", error=exc)
        matched_existing = status.startswith("200") and not job.link
        if matched_existing and job.resource["resourceType"] not in IMMUTABLE:
            # If-None-Exist found an earlier copy of a resource that has versions: push ours
            # next round, with If-Match on the version the EHR just told us.
            return Outcome(job, "refresh", Link(remote_id, version, 0))
        return Outcome(job, "sent", Link(remote_id, version, job.version))

    # Settling ----------------------------------------------------------------------------------
    def _delay(self, attempts: int, error: EhrError | None) -> float:
        cap = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** attempts)
        delay = cap / 2 + self.rand() * cap / 2  # "equal jitter": spread, never immediate
        after = getattr(error, "retry_after", None)
        return max(delay, after or 0.0)

    def _settle(self, outcomes: list[Outcome]) -> None:
        """Write a round's results: links, then each row's new state, a few statements in all."""
        if not outcomes:
            return
        now = self.clock()
        unsent: list[outbox.Unsent] = []
        parked: list[tuple[Item, str, int]] = []
        for o in outcomes:
            item = o.job.item
            if o.state in ("sent", "refresh"):
                continue
            if o.state == "later":
                unsent.append(outbox.later(item, now, DEPENDENCY_WAIT))
                continue
            err = o.error or EhrRetryable("unknown error")
            summary = outbox.error_summary(err.status, err.outcome, str(err))
            if o.state == "unreached":
                row = outbox.unreached(item, now, self._delay(self._unreachable - 1, err),
                                       err.status, summary)
            elif o.state == "retry":
                row = outbox.retry(item, now, self._delay(item.attempts, err), err.status,
                                   summary, self.settings.max_attempts)
            else:
                row = outbox.park(item, o.state, err.status, summary)
            unsent.append(row)
            if row.state in ("failed", "conflict"):
                parked.append((item, row.state, err.status))
        with self.store.transaction() as conn:
            _save_links(conn, [(o.job.item, o.link) for o in outcomes if o.link is not None], now)
            outbox.sent_many(conn, [o.job.item.id for o in outcomes
                                    if o.state in ("sent", "refresh")], now, self.worker_id)
            outbox.unsent_many(conn, unsent, now)
            # A refresh is queued again (after sent_many): next round updates with If-Match.
            outbox.enqueue(conn, [o.job.resource for o in outcomes if o.state == "refresh"], now)
        for item, state, status in parked:
            metrics.SYNC_FAILURES.labels(state).inc()
            log.warning("sync of %s/%s parked as %s (HTTP %s)", item.resource_type,
                        item.resource_id, state, status)


def _dependencies_first(jobs: list[Job]) -> list[Job]:
    """Stable order in which a job comes after the jobs of this batch it refers to."""
    keys = {j.key for j in jobs}
    deps = {j.key: {k for k in j.refs if k in keys and k != j.key} for j in jobs}
    ordered: list[Job] = []
    placed: set[str] = set()
    remaining = list(jobs)
    while remaining:
        ready = [j for j in remaining if deps[j.key] <= placed]
        if not ready:  # a reference cycle (none in our data): keep the original order
            ready = remaining
        ordered += ready
        placed |= {j.key for j in ready}
        remaining = [j for j in remaining if j.key not in placed]
    return ordered


def _conditional(caps: Capabilities, rtype: str) -> bool:
    return rtype in caps.conditional_create and rtype in caps.identifier_search


def _token(ident: Resource) -> str:
    return f"{ident['system']}|{ident['value']}"


def _has_identifier(res: Resource, ident: Resource) -> bool:
    found = res.get("identifier")
    items = [found] if isinstance(found, dict) else (found or [])
    return any(i.get("system") == ident["system"] and i.get("value") == ident["value"]
               for i in items)


def _of_patient(res: Resource, patient: str | None) -> bool:
    """Whether the EHR's resource is the patient's (its subject, or a Task's `for`, relative
    or absolute)."""
    if patient is None:
        return True
    ref = patient_reference(res)
    return isinstance(ref, str) and (ref == patient or ref.endswith("/" + patient))


def _jobs(conn: Connection, items: list[Item]) -> list[Job]:
    """The claimed rows with their resources and links, in two queries."""
    if not items:
        return []
    keys = [(i.resource_type, i.resource_id) for i in items]
    found = {(r["resourceType"], r["id"]): r for r in repository.read_many(conn, keys)}
    ids_by_type: dict[str, list[str]] = {}
    for rtype, rid in keys:
        ids_by_type.setdefault(rtype, []).append(rid)
    # One query per type: `type = ? AND id IN (...)` uses the primary key, where a tuple IN
    # makes SQLite scan every link.
    links = {
        (row.resource_type, row.resource_id): Link(row.remote_id, row.remote_version,
                                                   row.synced_version)
        for rtype, ids in ids_by_type.items()
        for row in conn.execute(
            select(sync_link).where(sync_link.c.resource_type == rtype,
                                    sync_link.c.resource_id.in_(ids))
        )
    }
    missing = [k for k in keys if k not in found]
    if missing:  # pragma: no cover - resources are never deleted
        raise RuntimeError(f"outbox rows point at missing resources: {missing[:3]}")
    return [Job(i, found[(i.resource_type, i.resource_id)],
                links.get((i.resource_type, i.resource_id))) for i in items]


def _save_links(conn: Connection, pairs: list[tuple[Item, Link]], now: float) -> None:
    """Record where resources live in the EHR: one upsert for all of them."""
    if not pairs:
        return
    # One row per resource (the last word wins): an upsert may not touch a row twice.
    rows = list({
        (item.resource_type, item.resource_id): {
            "resource_type": item.resource_type, "resource_id": item.resource_id,
            "remote_id": link.remote_id, "remote_version": link.remote_version,
            "synced_version": link.synced_version, "synced_at": now}
        for item, link in pairs
    }.values())
    upsert = _UPSERTS.get(conn.dialect.name)
    if upsert is None:  # pragma: no cover - the store runs on SQLite or PostgreSQL
        for row in rows:
            key = (sync_link.c.resource_type == row["resource_type"],
                   sync_link.c.resource_id == row["resource_id"])
            if not conn.execute(update(sync_link).where(*key).values(**row)).rowcount:
                conn.execute(sync_link.insert(), row)
        return
    stmt = upsert(sync_link)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[sync_link.c.resource_type, sync_link.c.resource_id],
        set_={name: stmt.excluded[name]
              for name in ("remote_id", "remote_version", "synced_version", "synced_at")},
    ), rows)


def _link(conn: Connection, rtype: str, rid: str) -> Link | None:
    row = conn.execute(
        select(sync_link.c.remote_id, sync_link.c.remote_version, sync_link.c.synced_version)
        .where(sync_link.c.resource_type == rtype, sync_link.c.resource_id == rid)
    ).first()
    return Link(*row) if row else None
