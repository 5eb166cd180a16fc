"""`mit-fhir import`: a resumable, streaming backfill of QuestionnaireResponses from NDJSON.

Pass 1 reads the file once, validates each line as the HTTP API would and stages the valid
responses (with their patient and authored instant) in `bulk_staged`; pass 2 stores them in
(patient, authored, line) order through the same code as `POST /fhir/QuestionnaireResponse`
(`submissions.record`), so reliable change is computed in time order per patient however the
file is sorted, and outbox rows are queued as for a submission. Every batch is one transaction
that also records the progress in `bulk_import` (keyed by the file's SHA-256): an interrupted
import resumes where its last batch committed, and nothing is stored twice. Memory stays
constant: one batch of lines or staged rows and one patient's earlier scores at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, delete, func, insert, select, tuple_, update
from sqlalchemy.exc import DataError
from tqdm import tqdm

from mit_fhir.errors import FhirError, ServiceUnavailable
from mit_fhir.fhir.plans import PlanError
from mit_fhir.store.repository import buffered_inserts
from mit_fhir.store.schema import search_index
from mit_fhir.usecases.context import Context
from mit_fhir.usecases.submissions import as_new, questionnaire_for, record

from .history import PatientHistory
from .lines import Outcome, Rejected, Skipped, Staged, classify, reason
from .reader import Line, NdjsonReader, file_digest
from .schema import bulk_import, bulk_rejection, bulk_staged, imported_response

T = TypeVar("T")
BatchHook = Callable[[str, int], None]
COUNTERS = ("accepted", "duplicates", "skipped", "rejected")
INDEX_VALUE_LENGTH = 512  # search_index.value is String(512)


@dataclass(frozen=True)
class Summary:
    """Where an import stands: its counts (over every run of the same file)."""

    digest: str
    file_name: str
    phase: str
    lines: int
    accepted: int
    duplicates: int
    skipped: int
    rejected: int
    resumed_at_line: int | None = None


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class Importer:
    """Imports one file into the context's store; `run()` resumes an interrupted import."""

    def __init__(
        self,
        context: Context,
        path: Path,
        batch_size: int = 500,
        progress: bool | None = None,
        on_batch: BatchHook | None = None,
    ) -> None:
        self.context = context
        self.store = context.store
        self.path = path
        self.batch_size = batch_size
        self.progress = progress  # None: a bar only on a terminal
        self.on_batch = on_batch  # called after each committed batch (phase, batch number)
        self.max_line_bytes = int(context.settings.get("MAX_BODY_BYTES") or 1 << 20)
        self.history = PatientHistory()
        self.digest = ""
        self._after: tuple[str, str, int] | None = None  # last staged row taken by pass 2

    def run(self) -> Summary:
        """Import the file (or finish an interrupted import of it); the final counts."""
        self.digest = file_digest(self.path)
        state = self._begin()
        resumed = int(state["lines"]) if state["phase"] != "staging" or state["lines"] else None
        if state["phase"] == "staging":
            self._stage(int(state["lines"]), int(state["byte_offset"]))
            self._set_phase("scoring")
        self._score()
        self._set_phase("done")
        return self._summary(resumed)

    # -- bookkeeping ---------------------------------------------------------------------

    def _begin(self) -> dict[str, Any]:
        """The import's row: created, resumed, or reset when that file was imported before."""
        now = time.time()
        with self.store.transaction() as conn:
            row = conn.execute(
                select(bulk_import).where(bulk_import.c.digest == self.digest)
            ).mappings().first()
            fresh = {"file_name": self.path.name[:255], "size": self.path.stat().st_size,
                     "phase": "staging", "lines": 0, "byte_offset": 0, "started_at": now,
                     "updated_at": now, **dict.fromkeys(COUNTERS, 0)}
            if row is None:
                conn.execute(insert(bulk_import).values(digest=self.digest, **fresh))
                return fresh
            if row["phase"] == "done":
                # A completed file imported again: every response will be found already imported.
                conn.execute(delete(bulk_rejection).where(bulk_rejection.c.digest == self.digest))
                conn.execute(update(bulk_import).where(bulk_import.c.digest == self.digest)
                             .values(**fresh))
                return fresh
            return dict(row)

    def _set_phase(self, phase: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(update(bulk_import).where(bulk_import.c.digest == self.digest)
                         .values(phase=phase, updated_at=time.time()))

    def _count(self, conn: Connection, rejections: Sequence[Rejected] = (),
               **values: Any) -> None:
        """Add to the counters (and set other columns) in the batch's transaction."""
        if rejections:
            conn.execute(insert(bulk_rejection), [
                {"digest": self.digest, "line": r.line, "reason": r.reason} for r in rejections])
        added = {name: values.pop(name) for name in COUNTERS if name in values}
        increments = {name: getattr(bulk_import.c, name) + n for name, n in added.items() if n}
        conn.execute(update(bulk_import).where(bulk_import.c.digest == self.digest)
                     .values(updated_at=time.time(), **increments, **values))

    def _hook(self, phase: str, number: int) -> None:
        if self.on_batch is not None:
            self.on_batch(phase, number)

    def _bar(self, **kwargs: Any) -> tqdm[Any]:
        return tqdm(disable=None if self.progress is None else not self.progress,
                    dynamic_ncols=True, **kwargs)

    # -- pass 1: read, validate, stage ---------------------------------------------------

    def _stage(self, after_line: int, offset: int) -> None:
        with NdjsonReader(self.path, self.max_line_bytes) as reader, self._bar(
            total=reader.size, unit="B", unit_scale=True, unit_divisor=1024,
            desc="reading",
        ) as bar:
            lines = reader.lines(after_line, offset)
            for number, batch in enumerate(batched(lines, self.batch_size), start=1):
                outcomes = [classify(self.context.catalogue, line, self.max_line_bytes)
                            for line in batch]
                with self.store.transaction() as conn:
                    self._settle_lines(conn, batch[-1], outcomes)
                bar.update(reader.position - bar.n)
                self._hook("staging", number)
            bar.update(reader.size - bar.n)

    def _settle_lines(self, conn: Connection, last: Line, outcomes: list[Outcome]) -> None:
        staged = [o for o in outcomes if isinstance(o, Staged)]
        known = self._known(conn, staged)
        rows, duplicates = [], 0
        for item in staged:
            if item.identity in known or item.identifier_token in known:
                duplicates += 1
                continue
            known.add(item.identity)
            rows.append({"digest": self.digest, "line": item.line, "patient": item.patient,
                         "authored": item.authored, "identity": item.identity,
                         "content": item.content})
        if rows:
            conn.execute(insert(bulk_staged), rows)
        rejections = [o for o in outcomes if isinstance(o, Rejected)]
        self._count(conn, rejections, duplicates=duplicates, rejected=len(rejections),
                    skipped=sum(isinstance(o, Skipped) for o in outcomes),
                    lines=last.number, byte_offset=last.end)

    def _known(self, conn: Connection, staged: list[Staged]) -> set[str | None]:
        """Identities (and identifier tokens) already imported, staged, or stored via the API."""
        if not staged:
            return set()
        identities = [s.identity for s in staged]
        # A token the index could not hold (PostgreSQL refuses NUL and over-long values) is
        # in no search; asking for it would fail the whole batch.
        tokens = [t for s in staged if (t := s.identifier_token)
                  and "\x00" not in t and len(t) <= INDEX_VALUE_LENGTH]
        known: set[str | None] = set(conn.execute(
            select(imported_response.c.identity)
            .where(imported_response.c.identity.in_(identities))).scalars())
        known.update(conn.execute(
            select(bulk_staged.c.identity)
            .where(bulk_staged.c.digest == self.digest, bulk_staged.c.identity.in_(identities))
        ).scalars())
        if tokens:
            known.update(conn.execute(
                select(search_index.c.value).where(
                    search_index.c.resource_type == "QuestionnaireResponse",
                    search_index.c.name == "identifier", search_index.c.value.in_(tokens))
            ).scalars())
        return known

    # -- pass 2: store in (patient, authored) order --------------------------------------

    def _score(self) -> None:
        with self.store.transaction() as conn:
            remaining = conn.execute(select(func.count()).select_from(bulk_staged)
                                     .where(bulk_staged.c.digest == self.digest)).scalar_one()
        with self._bar(total=remaining, unit="resp", desc="scoring") as bar:
            number = 0
            while True:
                number += 1
                done = self._score_batch()
                if not done:
                    return
                bar.update(done)
                self._hook("scoring", number)

    def _next_rows(self, conn: Connection) -> list[Any]:
        order = (bulk_staged.c.patient, bulk_staged.c.authored, bulk_staged.c.line)
        query = (
            select(*order, bulk_staged.c.identity, bulk_staged.c.content)
            .where(bulk_staged.c.digest == self.digest)
            .order_by(*order).limit(self.batch_size)
        )
        if self._after is not None:
            # Keyset paging: PostgreSQL's index still holds the rows deleted by earlier
            # batches until VACUUM, and each batch would otherwise walk past all of them.
            query = query.where(tuple_(*order) > tuple_(*self._after))
        rows = list(conn.execute(query).all())
        if rows:
            self._after = (rows[-1].patient, rows[-1].authored, rows[-1].line)
        return rows

    def _score_batch(self) -> int:
        """Store the next batch in one transaction; one by one if a response fails."""
        rows: list[Any] = []
        try:
            with self.store.transaction() as conn:
                rows = self._next_rows(conn)
                if rows:
                    self._store_rows(conn, rows)
            return len(rows)
        except ServiceUnavailable:
            self.history.clear()
            raise
        except (FhirError, PlanError, DataError):
            self.history.clear()
        for row in rows:
            self._score_alone(row)
        return len(rows)

    def _store_rows(self, conn: Connection, rows: list[Any]) -> None:
        already = set(conn.execute(
            select(imported_response.c.identity)
            .where(imported_response.c.identity.in_([r.identity for r in rows]))).scalars())
        imported = []
        with buffered_inserts(conn):
            for row in rows:
                if row.identity not in already:
                    imported.append({"identity": row.identity, "digest": self.digest,
                                     "resource_id": self._store_one(conn, row)})
        accepted = len(imported)
        if imported:
            conn.execute(insert(imported_response), imported)
        conn.execute(delete(bulk_staged).where(
            bulk_staged.c.digest == self.digest,
            bulk_staged.c.line.in_([r.line for r in rows])))
        self._count(conn, accepted=accepted, duplicates=len(rows) - accepted)

    def _store_one(self, conn: Connection, row: Any) -> str:
        """Store one staged response as a submission would; its new id."""
        qr = as_new(orjson.loads(row.content))
        questionnaire = questionnaire_for(self.context.catalogue, qr)
        stored = record(conn, self.context, qr, questionnaire, self.history.lookup)
        self.history.add(stored)
        return str(qr["id"])

    def _score_alone(self, row: Any) -> None:
        """One staged response in its own transaction; a failure rejects only this line."""
        try:
            with self.store.transaction() as conn:
                self._store_rows(conn, [row])
            return
        except ServiceUnavailable:
            self.history.clear()
            raise
        except PlanError as exc:
            why = f"the plan cannot be recorded: {exc}"
        except FhirError as exc:
            why = reason(exc)
        except DataError:  # PostgreSQL: a NUL character, or too long for an indexed column
            why = "a value cannot be stored (a NUL character, or too long for its column)"
        self.history.clear()
        with self.store.transaction() as conn:
            conn.execute(delete(bulk_staged).where(bulk_staged.c.digest == self.digest,
                                                   bulk_staged.c.line == row.line))
            self._count(conn, [Rejected(row.line, why[:1000])], rejected=1)

    # -- results -------------------------------------------------------------------------

    def _summary(self, resumed: int | None) -> Summary:
        with self.store.transaction() as conn:
            row = conn.execute(
                select(bulk_import).where(bulk_import.c.digest == self.digest)
            ).mappings().one()
        return Summary(digest=self.digest, file_name=row["file_name"], phase=row["phase"],
                       lines=row["lines"], resumed_at_line=resumed,
                       **{name: int(row[name]) for name in COUNTERS})


def rejections(context: Context, digest: str) -> Iterator[tuple[int, str]]:
    """(line, reason) of every rejected line of an import, in line order, streamed."""
    with context.store.transaction() as conn:
        result = conn.execution_options(yield_per=500).execute(
            select(bulk_rejection.c.line, bulk_rejection.c.reason)
            .where(bulk_rejection.c.digest == digest).order_by(bulk_rejection.c.line))
        for line, why in result:
            yield int(line), str(why)
