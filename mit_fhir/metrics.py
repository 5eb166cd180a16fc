"""Prometheus metrics: the definitions, the request hooks that feed them, and GET /metrics.

Under `mit-fhir serve` (gunicorn: a master and several worker processes, plus the sync worker)
prometheus_client runs in multiprocess mode: `server.prepare_metrics_dir` points
PROMETHEUS_MULTIPROC_DIR at an empty directory before this module is first imported, every
process writes its samples there, a scrape answered by any worker adds them all up, and
gunicorn's `child_exit` hook (and the sync supervisor) mark dead processes with `mark_dead`.
Without that variable (tests, `flask run`, a `mit-fhir worker` process) the metrics live in the
process's default registry.

Labels never carry patient data: requests are labelled with the Flask URL rule
(`/fhir/QuestionnaireResponse/<rid>`), never the raw path with its ids, and with the method when
it is a standard one (else OTHER, so a client cannot add labels). The outbox gauges are computed
at scrape time from the database, so every replica reports the same numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric

log = logging.getLogger("mit_fhir.metrics")

# Chosen by prometheus_client when it was first imported (PROMETHEUS_MULTIPROC_DIR set or not).
MULTIPROCESS = values.ValueClass is not values.MutexValue
UNMATCHED = "(unmatched)"  # the route label of a request no URL rule matched (404, 405)
# HTTP allows any token as a method: an unknown one is labelled OTHER, or each name a client
# invents (no token needed) would add a time series to every scrape.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"

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


def init_app(app: Flask) -> None:
    """Count and time every request, and serve GET /metrics."""
    app.before_request(_start_timer)
    app.after_request(_record)
    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])


def _start_timer() -> None:
    g.mit_fhir_started = time.perf_counter()


def _record(response: Response) -> Response:
    started = g.pop("mit_fhir_started", None)
    rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    method = request.method if request.method in KNOWN_METHODS else OTHER_METHOD
    REQUESTS.labels(method, rule, str(response.status_code)).inc()
    if started is not None:
        REQUEST_SECONDS.labels(method, rule).observe(time.perf_counter() - started)
    return response


def metrics_view() -> Response:
    """The process (or, under gunicorn, all processes') metrics and the outbox gauges."""
    body = generate_latest(registry()) + generate_latest(
        outbox_registry(current_app.extensions["mit_fhir"].store)
    )
    return Response(body, status=200, headers={"Content-Type": CONTENT_TYPE_LATEST})


def registry() -> CollectorRegistry:
    """Where the counters and histograms are read from: every process's files, or this one."""
    if not MULTIPROCESS:
        return REGISTRY
    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg)
    return reg


class OutboxCollector:
    """Outbox depth, rows by state and the oldest pending row's age, read at scrape time."""

    def __init__(self, store: Any, clock: Any = time.time) -> None:
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        from mit_fhir.sync import outbox

        up = GaugeMetricFamily(
            "mit_fhir_outbox_up", "1 when the outbox gauges could be read from the database."
        )
        try:
            with self.store.engine.connect() as conn:
                status = outbox.status(conn, self.clock(), limit=0)
        except Exception as exc:  # a scrape must not fail because the database is down
            log.warning("outbox metrics unavailable: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily(
            "mit_fhir_outbox_depth", "Outbox rows waiting to be delivered to the EHR (pending)."
        )
        depth.add_metric([], status["counts"]["pending"])
        yield depth
        rows = GaugeMetricFamily(
            "mit_fhir_outbox_rows", "Outbox rows by state.", labels=["state"]
        )
        for state, count in sorted(status["counts"].items()):
            rows.add_metric([state], count)
        yield rows
        age = GaugeMetricFamily(
            "mit_fhir_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox row; 0 when nothing is pending.",
        )
        age.add_metric([], status["oldest_pending_age_seconds"] or 0.0)
        yield age


def outbox_registry(store: Any) -> CollectorRegistry:
    """A registry holding only the outbox gauges of this store (built per scrape)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(OutboxCollector(store))
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
