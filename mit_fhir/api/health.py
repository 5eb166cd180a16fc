"""Health endpoints: /healthz (process alive) and /readyz (able to serve).

/readyz answers 200 when the database is reachable, its schema is at the newest migration, and,
when an EHR is configured (and MIT_FHIR_READY_CHECK_EHR is on), the EHR answers
GET {base}/metadata. The EHR's answer is cached for a few seconds so that the probes of every
replica do not hammer it. The body names each check and what is not ready; it holds no patient
data, no URL and no secret.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from flask import Blueprint, Response, current_app, jsonify
from flask.blueprints import BlueprintSetupState

from mit_fhir.store.migrate import is_current
from mit_fhir.vocabulary import FHIR_JSON
from mit_fhir.web.context import ctx

log = logging.getLogger("mit_fhir.health")
bp = Blueprint("health", __name__)

EHR_CHECK_TTL = 5.0  # seconds an EHR answer is reused
EHR_CHECK_TIMEOUT = 2.0  # at most this long per check (less when MIT_FHIR_EHR_TIMEOUT is lower)
_PROBE = "mit_fhir.ehr_probe"


class EhrProbe:
    """GET {base}/metadata, the answer cached for `ttl` seconds; one check at a time."""

    def __init__(
        self,
        base_url: str,
        timeout: float = EHR_CHECK_TIMEOUT,
        ttl: float = EHR_CHECK_TTL,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = base_url.rstrip("/") + "/metadata"
        self.timeout = timeout
        self.ttl = ttl
        self.session = session or requests.Session()
        self.clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._result = "unknown"

    def status(self) -> str:
        """'ok', or why the EHR is not ready (e.g. 'unreachable (ConnectTimeout)', 'HTTP 503')."""
        with self._lock:
            now = self.clock()
            if self._checked_at is None or now - self._checked_at >= self.ttl:
                self._result = self._check()
                self._checked_at = self.clock()
            return self._result

    def _check(self) -> str:
        try:
            resp = self.session.get(
                self.url, timeout=self.timeout, headers={"Accept": FHIR_JSON}
            )
        except requests.RequestException as exc:
            log.warning("readiness: EHR unreachable: %s", type(exc).__name__)
            return f"unreachable ({type(exc).__name__})"
        if not 200 <= resp.status_code < 300:
            log.warning("readiness: EHR metadata answered HTTP %s", resp.status_code)
            return f"HTTP {resp.status_code}"
        return "ok"


@bp.record_once
def _make_probe(state: BlueprintSetupState) -> None:
    config = state.app.config
    if config.get("EHR_BASE_URL") and config.get("READY_CHECK_EHR", True):
        timeout = min(EHR_CHECK_TIMEOUT, float(config.get("EHR_TIMEOUT") or EHR_CHECK_TIMEOUT))
        state.app.extensions[_PROBE] = EhrProbe(config["EHR_BASE_URL"], timeout)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    checks: dict[str, Any] = {}
    try:
        current = is_current(ctx().store.engine)
        checks["database"] = "ok"
        checks["migrations"] = "ok" if current else "pending"
    except Exception:  # any database failure means "not ready"; the cause goes to the log
        # With the traceback, so a bug does not read as "unreachable"; the JSON log formatter
        # keeps frames and exception types but drops their messages (no patient data).
        log.warning("readiness: database unreachable", exc_info=True)
        checks["database"] = "unreachable"
        checks["migrations"] = "unknown"
    probe: EhrProbe | None = current_app.extensions.get(_PROBE)
    checks["ehr"] = probe.status() if probe else "not checked"
    not_ready = [name for name, value in checks.items() if value not in ("ok", "not checked")]
    if not_ready:
        return jsonify(status="unavailable", not_ready=not_ready, **checks), 503
    return jsonify(status="ok", **checks), 200
