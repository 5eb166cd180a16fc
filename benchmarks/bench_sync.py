"""Syncing 1,000 Observations to Medplum: transaction Bundles against one request each.

Goal (issue "Sync to the host EHR"): Bundles at least 5x faster. Both runs use the same worker
and the same first-delivery protocol (plain creates; see mit_fhir/sync/worker.py); the only
difference is whether the EHR's CapabilityStatement is read as supporting transactions. Each
mode runs REPEAT times on fresh Observations (fresh identifiers) against one Medplum server;
medians are printed. Only the worker's rounds are timed: in both modes the CapabilityStatement
is read and the set-up's garbage collected before the clock starts.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from mit_fhir.app import create_app
from mit_fhir.ehr.factory import build_client
from mit_fhir.fhir.index import observation_index, sort_date
from mit_fhir.store.repository import insert
from mit_fhir.sync import outbox
from mit_fhir.sync.worker import SyncSettings, Worker
from tests.servers.fixtures import MedplumServer

COUNT = 1000
REPEAT = 5


def _observations(label: str) -> list[dict[str, object]]:
    return [
        {"resourceType": "Observation", "id": f"{label}-{i}", "status": "final",
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                   "observation-category", "code": "survey"}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
         "subject": {"reference": "Patient/benchmark"}, "effectiveDateTime": "2024-01-01",
         "valueQuantity": {"value": i % 28, "unit": "score"},
         "identifier": [{"system": "https://mit-fhir.org/fhir/identifier/observation",
                         "value": f"{label}-{i}"}]}
        for i in range(COUNT)
    ]


def _sync_seconds(base_url: str, label: str, transactions: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        # No HTTP is served (the worker is driven in-process): development mode suffices.
        app = create_app({"DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3", "AUTH": "none",
                          "EHR_BASE_URL": base_url})
        store = app.extensions["mit_fhir"].store
        with store.transaction() as conn:
            stored = [insert(conn, o, observation_index(o), sort_date(o))
                      for o in _observations(label)]
            outbox.enqueue(conn, stored, time.time())
        client = build_client(dict(app.config))
        # The CapabilityStatement is read before timing in both modes, as a running worker has
        # it already (reading it opens the connection too).
        caps = client.capabilities()
        if not transactions:
            client._capabilities = replace(caps, transaction=False)
        settings = SyncSettings.from_config(dict(app.config))  # the service's defaults
        worker = Worker(store, client, settings)
        # The set-up's garbage (the app, 1,000 inserts) is collected before the clock starts in
        # both modes: otherwise a full collection of it lands at random in either timed run.
        gc.collect()
        start = time.perf_counter()
        while worker.run_once():
            pass
        elapsed = time.perf_counter() - start
        assert outbox_counts(app)["sent"] == COUNT, "every Observation must arrive"
        store.dispose()
        return elapsed


def outbox_counts(app: object) -> dict[str, int]:
    with app.extensions["mit_fhir"].store.transaction() as conn:  # type: ignore[attr-defined]
        counts: dict[str, int] = outbox.status(conn, time.time())["counts"]
    return counts


def run() -> dict[str, float]:
    server = MedplumServer(Path(tempfile.mkdtemp(prefix="mit-fhir-bench-")))
    server.start()
    try:
        singles, bundles = [], []
        for n in range(REPEAT):
            singles.append(_sync_seconds(server.base_url, f"single-{n}", transactions=False))
            bundles.append(_sync_seconds(server.base_url, f"bundle-{n}", transactions=True))
    finally:
        server.close()
    single, bundle = statistics.median(singles), statistics.median(bundles)
    ratio = single / bundle
    print(f"benchmark 4 - sync {COUNT} Observations to Medplum (goal: Bundles >= 5x faster)")
    print(f"  one request per resource:        median {single:.3f} s over {REPEAT} runs")
    print(f"  transaction Bundles:             median {bundle:.3f} s over {REPEAT} runs")
    print(f"  ratio: {ratio:.2f}x  ({'met' if ratio >= 5 else 'MISSED'})")
    return {"single": single, "bundle": bundle, "ratio": ratio}


if __name__ == "__main__":
    run()
