"""Request bodies and a small open-loop (constant-rate) load generator for the HTTP benchmark.

wrk is closed-loop: each connection waits for its answer before sending again, so a slow server
is sent less and its latency looks better than a user would see it. `constant_rate` sends
request i at start + i / rate whatever happened before, from a pool of keep-alive connections,
and measures each latency from that scheduled time (coordinated omission corrected, as wrk2
does). Bodies are the same as benchmarks/post_response.lua's.
"""

from __future__ import annotations

import http.client
import queue
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
HEADERS = {"Content-Type": "application/fhir+json"}


def template(sample: dict[str, Any]) -> str:
    """The sample response with __ID__, __PATIENT__ and __AUTHORED__ placeholders."""
    qr = {k: v for k, v in sample.items() if k not in ("id", "meta")}
    qr["identifier"] = {"system": "https://mit-fhir.org/fhir/identifier/benchmark",
                        "value": "__ID__"}
    qr["subject"] = {"reference": "Patient/__PATIENT__"}
    qr["authored"] = "__AUTHORED__"
    return orjson.dumps(qr).decode()


def body(text: str, n: int, pool: int, label: str) -> bytes:
    """Request n's body: identifier label-n, patient bench-(n mod pool), authored 2020 + n min."""
    authored = (EPOCH + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (text.replace("__ID__", f"{label}-{n}").replace("__PATIENT__", f"bench-{n % pool}")
            .replace("__AUTHORED__", authored).encode())


@dataclass(frozen=True)
class RateResult:
    """What a constant-rate run measured (latencies in seconds, from the scheduled send time)."""

    rate: float
    sent: int
    achieved: float
    failed: int
    p50: float
    p99: float


def constant_rate(url: str, text: str, rate: float, seconds: float, pool: int, label: str,
                  connections: int = 32, expect: int = 201) -> RateResult:
    """POST `rate` requests a second for `seconds` to url; any other status than expect fails."""
    parts = urlsplit(url)
    total = max(2, int(rate * seconds))
    latencies: list[float] = [0.0] * total
    failures: list[int] = []
    jobs: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()
    finished: list[float] = []

    def sender() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=60)
        while (job := jobs.get()) is not None:
            n, scheduled = job
            data = body(text, n, pool, label)
            status = 0
            for _attempt in range(2):  # the server may close an idle keep-alive connection
                try:
                    conn.request("POST", parts.path, data, HEADERS)
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                    break
                except (http.client.RemoteDisconnected, ConnectionError):
                    conn.close()
                    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80,
                                                      timeout=60)
            end = time.perf_counter()
            latencies[n] = end - scheduled
            finished.append(end)
            if status != expect:
                failures.append(status)
        conn.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    start = time.perf_counter() + 0.05
    for n in range(total):
        scheduled = start + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        jobs.put((n, scheduled))
    for _ in threads:
        jobs.put(None)
    for t in threads:
        t.join()
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return RateResult(rate=rate, sent=total, achieved=total / (max(finished) - start),
                      failed=len(failures), p50=statistics.median(latencies), p99=quantiles[98])
