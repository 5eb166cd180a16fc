"""Test rig for syncing to a real FHIR server: an app, an in-process worker, EHR look-ups."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Flask
from sqlalchemy import select

from mit_fhir.app import create_app
from mit_fhir.ehr.factory import build_client
from mit_fhir.store.schema import outbox
from mit_fhir.sync.worker import SyncSettings, Worker
from tests.conftest import FHIR_JSON, drop_database, fresh_database_url, sample

Resource = dict[str, Any]
FAST = {"SYNC_BACKOFF_BASE": 0.02, "SYNC_BACKOFF_MAX": 0.2, "SYNC_POLL_INTERVAL": 0.05}


class Rig:
    """One service (this run's database: SQLite in tmp, or a PostgreSQL schema) syncing to one
    EHR base URL."""

    def __init__(self, tmp: Path, base_url: str, **settings: Any) -> None:
        self.db_url = fresh_database_url(tmp, "mit-fhir")
        self.base_url = base_url
        self.app: Flask = create_app({"DATABASE_URL": self.db_url, "EHR_BASE_URL": base_url,
                                      **FAST, **settings})
        self.client = self.app.test_client()
        self.patient = f"p-{uuid.uuid4().hex[:12]}"
        self.worker = Worker(self.app.extensions["mit_fhir"].store,
                             build_client(dict(self.app.config)),
                             SyncSettings.from_config(dict(self.app.config)))

    def submit(self, qid: str, name: str = "complete", **changes: Any) -> Resource:
        qr = {**sample(qid, name), "subject": {"reference": f"Patient/{self.patient}"},
              **changes}
        resp = self.client.post("/fhir/QuestionnaireResponse", data=json.dumps(qr),
                                content_type=FHIR_JSON)
        assert resp.status_code == 201, resp.get_json()
        body: Resource = resp.get_json()
        return body

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = self.client.get("/sync/status").get_json()["counts"]
        return counts

    def drain(self, timeout: float = 60.0) -> dict[str, int]:
        """Run the worker until nothing is pending (or fail after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while self.counts()["pending"]:
            assert time.monotonic() < deadline, f"outbox not drained: {self.counts()}"
            if not self.worker.run_once():
                time.sleep(0.05)
        return self.counts()

    def rows(self) -> list[Any]:
        with self.app.extensions["mit_fhir"].store.transaction() as conn:
            return list(conn.execute(select(outbox).order_by(outbox.c.id)))

    def close(self) -> None:
        self.app.extensions["mit_fhir"].store.dispose()
        drop_database(self.db_url)


def ehr_resources(base_url: str, rtype: str, patient: str) -> list[Resource]:
    """Every `rtype` of the patient in the EHR, filtered here: some servers ignore filters."""
    found: list[Resource] = []
    url: str | None = f"{base_url}/{rtype}"
    params: dict[str, str] | None = {"_count": "1000"}
    for _ in range(100):
        if url is None:
            break
        bundle = requests.get(url, params=params, headers={"Accept": FHIR_JSON}, timeout=30).json()
        found += [e["resource"] for e in bundle.get("entry", [])
                  if e.get("resource", {}).get("resourceType") == rtype]
        url = next((link["url"] for link in bundle.get("link", [])
                    if link.get("relation") == "next"), None)
        params = None
    wanted = f"Patient/{patient}"
    return [r for r in found
            if str(r.get("subject", {}).get("reference", "")).endswith(wanted)]


def identifier_values(resources: list[Resource]) -> list[str]:
    """Our business identifier values (one per resource) of EHR resources."""
    values = []
    for res in resources:
        ident = res.get("identifier")
        items = [ident] if isinstance(ident, dict) else (ident or [])
        values += [i["value"] for i in items if "mit-fhir.org" in str(i.get("system", ""))]
    return values


class HoldingProxy:
    """A loopback HTTP proxy that can hold the EHR's answer to transactions.

    It forwards each request to the EHR at once (so the EHR commits), and while `hold` is set it
    keeps the answer back: a worker killed meanwhile has delivered data it never recorded.
    """

    def __init__(self, target: str) -> None:
        parts = urlsplit(target.rstrip("/"))
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path  # "" for Medplum, "/fhir" for sekmet
        self.hold = threading.Event()
        self.forwarded = threading.Event()  # a transaction reached the EHR while holding
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                resp = requests.request(self.command, proxy.origin + self.path, data=data,
                                        headers=headers, timeout=60)
                is_transaction = self.path.split("?")[0].rstrip("/") == proxy.path
                if self.command == "POST" and is_transaction and proxy.hold.is_set():
                    proxy.forwarded.set()
                    proxy.release.wait(60)
                self.send_response(resp.status_code)
                for key, value in resp.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection",
                                           "content-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_PUT = _relay  # noqa: N815

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"

    def __enter__(self) -> HoldingProxy:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
