"""The request hooks that feed the Prometheus metrics, GET /metrics, and the outbox gauges."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from mit_fhir import metrics
from mit_fhir.store.repository import Store
from mit_fhir.sync import outbox
from mit_fhir.web.context import ctx

log = logging.getLogger("mit_fhir.metrics")

# Requests are labelled with the Flask URL rule (`/fhir/QuestionnaireResponse/<rid>`), never
# the raw path with its ids, so labels carry no patient data.
UNMATCHED = "(unmatched)"  # the route label of a request no URL rule matched (404, 405)
# HTTP allows any token as a method: an unknown one is labelled OTHER, or each name a client
# invents (no token needed) would add a time series to every scrape.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"


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
    metrics.REQUESTS.labels(method, rule, str(response.status_code)).inc()
    if started is not None:
        metrics.REQUEST_SECONDS.labels(method, rule).observe(time.perf_counter() - started)
    return response


def metrics_view() -> Response:
    """The process (or, under gunicorn, all processes') metrics and the outbox gauges."""
    body = generate_latest(metrics.registry()) + generate_latest(outbox_registry(ctx().store))
    return Response(body, status=200, headers={"Content-Type": CONTENT_TYPE_LATEST})


class OutboxCollector:
    """Outbox depth, rows by state and the oldest pending row's age, read at scrape time.

    Computed from the database, so every replica reports the same numbers.
    """

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "mit_fhir_outbox_up", "1 when the outbox gauges could be read from the database."
        )
        try:
            with self.store.engine.connect() as conn:
                status = outbox.status(conn, self.clock(), limit=0)
        except Exception:  # a scrape must not fail because the database is down
            # The query reads counts and one timestamp (limit=0: no parked rows), so the error
            # holds no patient data; the JSON log formatter drops exception messages anyway.
            log.exception("outbox metrics unavailable")
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


def outbox_registry(store: Store) -> CollectorRegistry:
    """A registry holding only the outbox gauges of this store (built per scrape)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(OutboxCollector(store))
    return reg
