"""One patient's earlier scores in memory, answering what `outcomes.history` asks the database.

The import stores a patient's responses in authored order, so their history is read once, then
grows by the Observations the import stores. Matching mirrors the search `history` runs: the
Observation's own index rows (patient, code, date, status:code final) and its order (date, id).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection, and_, select

from mit_fhir.fhir.index import observation_index
from mit_fhir.store.schema import resource, search_index

Resource = dict[str, Any]
Entry = tuple[str, str, Resource]  # (date index value, id, Observation)
_DATE = itemgetter(0)


def _order(entry: Entry) -> tuple[str, str]:
    return entry[0], entry[1]


class PatientHistory:
    """The final score Observations of the patient last asked about, by code."""

    def __init__(self) -> None:
        self.patient: str | None = None
        self._by_code: dict[str, list[Entry]] = {}

    def clear(self) -> None:
        """Forget everything (after a rolled-back transaction)."""
        self.patient = None
        self._by_code = {}

    def lookup(
        self, conn: Connection, patient: str, coding: Resource, before: str
    ) -> tuple[Resource | None, Resource | None]:
        """The earliest and latest of the patient's scores of this code strictly before `before`."""
        if patient != self.patient:
            self._load(conn, patient)
        entries = self._by_code.get(f"{coding.get('system', '')}|{coding['code']}", [])
        end = bisect_left(entries, before, key=_DATE)
        if not end:
            return None, None
        return entries[0][2], entries[end - 1][2]

    def add(self, resources: Iterable[Resource]) -> None:
        """Take in what was just stored for the current patient (non-Observations are ignored)."""
        if self.patient is None:
            return
        for res in resources:
            if res.get("resourceType") == "Observation":
                self._take(res)

    def _load(self, conn: Connection, patient: str) -> None:
        self.clear()
        self.patient = patient
        # Driven by the patient's index rows: a generic multi-criterion search scans every
        # Observation on SQLite, which is quadratic over an import.
        query = (
            select(resource.c.content)
            .join(search_index, and_(search_index.c.resource_type == resource.c.resource_type,
                                     search_index.c.resource_id == resource.c.id))
            .where(search_index.c.resource_type == "Observation",
                   search_index.c.name == "patient", search_index.c.value == patient)
        )
        for (content,) in conn.execute(query):
            self._take(orjson.loads(content))

    def _take(self, obs: Resource) -> None:
        if "valueQuantity" not in obs and "valueCodeableConcept" not in obs:
            return
        rows = observation_index(obs)
        if ("patient", self.patient) not in rows or ("status:code", "final") not in rows:
            return
        date = next((value for name, value in rows if name == "date"), None)
        if date is None:
            return
        for name, value in dict.fromkeys(rows):
            if name == "code":
                insort(self._by_code.setdefault(value, []), (date, obs["id"], obs), key=_order)
