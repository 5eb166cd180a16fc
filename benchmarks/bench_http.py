"""HTTP throughput of `POST /fhir/QuestionnaireResponse` against a bare fhir.resources endpoint.

Goal (issue 7, benchmark 3): the service under its production server (`mit-fhir serve`:
gunicorn's master, 2 uvicorn workers of 4 threads, sync worker off as no EHR is configured, a
fresh database) reaches at least 0.7 of the throughput of a bare Flask endpoint under the same
server settings that only parses the same body with fhir.resources (benchmarks/bare_server.py).
Peak throughput is measured with wrk (closed loop, benchmarks/post_response.lua, at several
connection counts, the best kept); then each server is loaded at half its own peak with the
open-loop generator of benchmarks/load.py, which reports p50 and p99 latency from the scheduled
send time. Every request is a complete sample response with its own identifier and authored
time, for one of POOL synthetic patients; each measurement starts on a fresh database.

    python -m benchmarks.bench_http [--instrument phq-9] [--seconds 15]
        [--database sqlite|postgresql] [--profile DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from benchmarks.load import RateResult, constant_rate, template
from tests.loopback import wait_healthy
from tests.servers.fixtures import free_port

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "post_response.lua"
GOAL = 0.7
POOL = 500  # synthetic patients
CONNECTIONS = (8, 16, 32)
WARMUP_SECONDS = 3
STARTUP_SECONDS = 60
POSTGRES_URL = os.environ.get("MIT_FHIR_BENCH_POSTGRES_URL",
                              "postgresql+psycopg://root@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Throughput:
    """One wrk run: requests per second and wrk's own latency percentiles (seconds)."""

    connections: int
    rps: float
    errors: int
    p50: float
    p99: float


@dataclass
class Server:
    """A gunicorn server started here, in its own process group."""

    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)




def _launch(command: list[str], env: dict[str, str], log: Path, port: int) -> Server:
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_healthy(proc, server.base, log, STARTUP_SECONDS)
    except RuntimeError:
        server.stop()
        raise
    return server


def start_service(database_url: str, log: Path, workers: int = 2) -> Server:
    """`mit-fhir serve` on a free port: production settings, no EHR (so no sync worker).

    The one place the benchmarks and their smoke test start the service. Development mode
    (MIT_FHIR_AUTH=none, loopback): no token to verify, but every submission is still audited.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIT_FHIR_")}
    env["MIT_FHIR_DATABASE_URL"] = database_url
    env["MIT_FHIR_AUTH"] = "none"
    port = free_port()
    command = [str(Path(sys.executable).parent / "mit-fhir"), "serve", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers)]
    return _launch(command, env, log, port)


def start_bare(log: Path, workers: int = 2) -> Server:
    """The bare fhir.resources endpoint (benchmarks/bare_server.py) on a free port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIT_FHIR_")}
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.bare_server", "--port", str(port),
               "--workers", str(workers)]
    return _launch(command, env, log, port)


def wrk(url: str, template_file: Path, seconds: float, connections: int,
        label: str) -> Throughput:
    """One closed-loop wrk run (one wrk thread: the load generator shares the 2 cores)."""
    wrk_bin = shutil.which("wrk")
    if wrk_bin is None:
        raise RuntimeError("wrk is not installed: run `make bench-deps`")
    done = subprocess.run(
        [wrk_bin, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
         "-s", str(LUA), url, "--", str(template_file), str(POOL), label, "1"],
        capture_output=True, text=True, check=False, timeout=seconds + 120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Throughput(connections, result["requests"] / (result["duration_us"] / 1e6), errors,
                      result["p50_us"] / 1e6, result["p99_us"] / 1e6)


@contextmanager
def databases(kind: str, tmp: Path) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty databases: SQLite files, or PostgreSQL schemas dropped after."""
    if kind == "sqlite":
        yield lambda: f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    admin = create_engine(POSTGRES_URL, poolclass=NullPool)
    schemas: list[str] = []

    def fresh() -> str:
        schemas.append(f"bench_{uuid.uuid4().hex[:12]}")
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schemas[-1]}"'))
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schemas[-1]}"})
        return url.render_as_string(hide_password=False)

    try:
        yield fresh
    finally:
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _profile(server: Server, out_dir: Path, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy record of the gunicorn master and its workers for `seconds`: collapsed stacks
    (one "frame;frame;... count" line each), for flamegraph.pl or speedscope."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.proc.pid),
         "--subprocesses", "--duration", str(int(seconds)), "--rate", "100", "--format", "raw",
         "--output", str(out_dir / "py-spy-service.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(start: Callable[[Path], Server], name: str, text: str, seconds: float,
            tmp: Path, connections: tuple[int, ...] = CONNECTIONS,
            profile: Path | None = None) -> tuple[Throughput, RateResult]:
    """Peak throughput (best over connection counts), then latency at half that peak.

    Each measurement gets a freshly started server (on a fresh database for the service)."""
    template_file = tmp / "template.json"
    template_file.write_text(text)
    runs = []
    for c in connections:
        server = start(tmp / f"{name}-{c}.log")
        try:
            url = f"{server.base}/fhir/QuestionnaireResponse"
            wrk(url, template_file, min(WARMUP_SECONDS, seconds), c, f"warmup-{c}")
            spy = _profile(server, profile, seconds) if profile and c == connections[-1] else None
            runs.append(wrk(url, template_file, seconds, c, f"peak-{c}"))
            if spy is not None:
                spy.wait(timeout=seconds + 60)
        finally:
            server.stop()
        print(f"    {name}: wrk -c{c:<3} {runs[-1].rps:8.1f} req/s   p50 "
              f"{runs[-1].p50 * 1000:7.1f} ms  p99 {runs[-1].p99 * 1000:7.1f} ms  "
              f"errors {runs[-1].errors}")
    best = max(runs, key=lambda r: r.rps)
    server = start(tmp / f"{name}-rate.log")
    try:
        url = f"{server.base}/fhir/QuestionnaireResponse"
        wrk(url, template_file, min(WARMUP_SECONDS, seconds), connections[0], "warmup-rate")
        # Half the peak; at least one a second, so that a peak window in which no request
        # finished (a 1 s window on a loaded machine) still measures a latency, not 1/0.
        rated = constant_rate(url, text, max(best.rps / 2, 1.0), seconds, POOL, "rate")
    finally:
        server.stop()
    return best, rated


def run(instrument: str = "phq-9", seconds: float = 15, database: str = "sqlite",
        connections: tuple[int, ...] = CONNECTIONS, profile: Path | None = None,
        ) -> dict[str, float]:
    sample = orjson.loads((ROOT / "tests" / "data" / "samples" / instrument / "complete.json")
                          .read_bytes())
    text = template(sample)
    print(f"benchmark 3 - HTTP POST /fhir/QuestionnaireResponse ({instrument}, {len(text)} "
          f"bytes, {POOL} patients, {database}), 2 workers x 4 threads on "
          f"{os.cpu_count()} cores (goal: service >= {GOAL:g} x bare throughput)")
    tmp = Path(tempfile.mkdtemp(prefix="mit-fhir-bench-http-"))
    try:
        with databases(database, tmp) as fresh:
            service, service_rate = measure(
                lambda log: start_service(fresh(), log), "service", text, seconds, tmp,
                connections, profile)
            bare, bare_rate = measure(start_bare, "bare", text, seconds, tmp, connections)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = service.rps / bare.rps
    print(f"  peak (wrk, closed loop, {seconds:g} s, best of -c {connections}):")
    for name, peak in (("service", service), ("bare", bare)):
        print(f"    {name:<8} {peak.rps:8.1f} req/s at -c{peak.connections}, errors {peak.errors}")
    print(f"  ratio service/bare: {ratio:.2f}  ({'met' if ratio >= GOAL else 'MISSED'})")
    print(f"  at half the peak (open loop, constant rate, {seconds:g} s; latency from the "
          "scheduled send):")
    for name, r in (("service", service_rate), ("bare", bare_rate)):
        print(f"    {name:<8} {r.rate:7.1f} req/s asked, {r.achieved:7.1f} achieved, "
              f"{r.sent} sent, {r.failed} failed: p50 {r.p50 * 1000:7.1f} ms, "
              f"p99 {r.p99 * 1000:7.1f} ms")
    return {"service_rps": service.rps, "bare_rps": bare.rps, "ratio": ratio,
            "service_p50": service_rate.p50, "service_p99": service_rate.p99,
            "bare_p50": bare_rate.p50, "bare_p99": bare_rate.p99,
            "errors": service.errors + bare.errors + service_rate.failed + bare_rate.failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instrument", default="phq-9")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--connections", type=int, nargs="+", default=list(CONNECTIONS))
    parser.add_argument("--profile", type=Path, help="py-spy the service's last peak run here")
    args = parser.parse_args()
    run(args.instrument, args.seconds, args.database, tuple(args.connections), args.profile)


if __name__ == "__main__":
    main()
