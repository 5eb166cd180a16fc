"""The import's in-memory history answers exactly what `outcomes.history` reads from the store."""

from __future__ import annotations

import json
from collections.abc import Callable

from flask import Flask
from sqlalchemy import select

from mit_fhir.bulk.history import PatientHistory
from mit_fhir.store.schema import resource
from mit_fhir.usecases.scorer import history
from tests.bulk.synthetic import responses
from tests.conftest import FHIR_JSON


def test_lookup_equals_the_database_query(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    client = app.test_client()
    qrs = list(responses(30, patients=2, seed="history", instruments=("phq-9", "bsl-23")))
    for qr in qrs:
        resp = client.post("/fhir/QuestionnaireResponse", data=json.dumps(qr),
                           content_type=FHIR_JSON)
        assert resp.status_code == 201
    moments = [*sorted({qr["authored"][:19] for qr in qrs}),
               "2000-01-01T00:00:00", "2100-01-01T00:00:00"]
    cache = PatientHistory()
    checked = 0
    with app.extensions["mit_fhir"].store.transaction() as conn:
        stored = [json.loads(c) for c in conn.execute(
            select(resource.c.content).where(resource.c.resource_type == "Observation")
        ).scalars()]
        codings = {json.dumps(o["code"]["coding"][0], sort_keys=True) for o in stored}
        for patient in sorted({o["subject"]["reference"] for o in stored}):
            for coding in map(json.loads, sorted(codings)):
                for before in moments:
                    expected = history(conn, patient, coding, before)
                    assert cache.lookup(conn, patient, coding, before) == expected
                    checked += expected[0] is not None
    assert checked > 50
