"""`mit-fhir export`: stored Observations as FHIR Bulk Data NDJSON, streamed.

Selection is by `meta.lastUpdated` >= the given instant, as Bulk Data's `_since`: an export
picks up what was stored or changed since the last one (an Observation's effective date is
when the patient answered, which says nothing about whether it was already exported).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from sqlalchemy import select

from mit_fhir.fhir.search import date_key
from mit_fhir.store.repository import Store
from mit_fhir.store.schema import resource

FETCH = 500


def since_instant(text: str) -> str:
    """A FHIR date/dateTime as the UTC instant it starts at; ValueError when malformed."""
    instant = date_key(text)
    if instant is None:
        raise ValueError("expected a FHIR date or dateTime, e.g. 2024-01-31 or 2024-01-31T12:00Z")
    return instant


def observations_since(store: Store, since: str) -> Iterator[str]:
    """The stored JSON (one line each) of Observations last updated at or after `since`."""
    query = (
        select(resource.c.content)
        .where(resource.c.resource_type == "Observation", resource.c.last_updated >= since)
        .order_by(resource.c.last_updated, resource.c.id)
    )
    with store.engine.connect() as conn:
        for (content,) in conn.execution_options(yield_per=FETCH).execute(query):
            yield content


def export(store: Store, since: str, out: TextIO) -> int:
    """Write each Observation as one NDJSON line; the number written."""
    count = 0
    for content in observations_since(store, since):
        out.write(content)
        out.write("\n")
        count += 1
    return count
