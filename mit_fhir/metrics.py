"""The Prometheus metrics (counters, histograms) and where they are read from; no Flask."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
    start_http_server,
    values,
)

log = logging.getLogger("mit_fhir.metrics")

# Under `mit-fhir serve` (gunicorn: a master, several workers, and the sync worker)
# prometheus_client runs in multiprocess mode: `server.prepare_metrics_dir` points
# PROMETHEUS_MULTIPROC_DIR at an empty directory before this module is first imported, every
# process writes its samples there, a scrape answered by any worker adds them all up, and
# gunicorn's `child_exit` hook (and the sync supervisor) call `mark_dead`. Without that variable
# (tests, `flask run`, a `mit-fhir worker` process) the metrics live in the default registry.
# Labels never carry patient data (the request hooks of mit_fhir.web.metrics label by URL rule).
MULTIPROCESS = values.ValueClass is not values.MutexValue

# Request latency: most answers take milliseconds; a submission with extraction a few tens.
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_EXTRACT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter(
    "mit_fhir_http_requests",
    "HTTP requests answered, by method, route (the URL rule, never the raw path) and status.",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "mit_fhir_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route (the URL rule).",
    ["method", "route"],
    buckets=_HTTP_BUCKETS,
)
EXTRACTION_SECONDS = Histogram(
    "mit_fhir_extraction_duration_seconds",
    "Time to score one QuestionnaireResponse into Observations, with its change flags.",
    buckets=_EXTRACT_BUCKETS,
)
SYNC_FAILURES = Counter(
    "mit_fhir_sync_failures",
    "Outbox rows the sync worker parked (gave up on), by the state they were parked in.",
    ["state"],
)
TOKEN_REFRESHES = Counter(
    "mit_fhir_ehr_token_refreshes",
    "Access tokens fetched from the EHR's token endpoint (SMART Backend Services).",
)
SCHEDULE_TASKS = Counter(
    "mit_fhir_schedule_tasks",
    "Tasks the assessment schedule runs created, or superseded (an open one cancelled as "
    "missed when the next occurrence came), by what was done.",
    ["outcome"],
)
AUDIT_FAILURES = Counter(
    "mit_fhir_audit_failures",
    "AuditEvents that could not be stored (the request's read was refused with 503).",
)


def registry() -> CollectorRegistry:
    """Where the counters and histograms are read from: every process's files, or this one."""
    if not MULTIPROCESS:
        return REGISTRY
    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg)
    return reg


def mark_dead(pid: int | None) -> None:
    """Tell the multiprocess collector that a process has exited (its live gauges go)."""
    if MULTIPROCESS and pid:
        multiprocess.mark_process_dead(pid)


def serve_worker_metrics(port: int | None, addr: str = "0.0.0.0") -> Any:  # noqa: S104
    """Serve the sync worker's metrics on port (a separate worker Deployment); a daemon thread.

    Returns prometheus_client's (server, thread), or None when no port is configured.
    """
    if not port:
        return None
    started = start_http_server(port, addr=addr, registry=registry())
    log.info("worker metrics on :%d/metrics", port)
    return started
