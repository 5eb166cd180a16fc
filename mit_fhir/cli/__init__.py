"""The `mit-fhir` command: serve, database, wording, cohort analysis, bulk import/export, config.

Each command loads only the settings groups it uses (config.py), so a command that serves no
HTTP needs no HTTP settings; exits.py holds the exit statuses every --help lists.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from flask import Flask

from mit_fhir.cli.cohort import reliable_change
from mit_fhir.cli.exits import COMMON, Commands, Exit, epilog, fail
from mit_fhir.cli.tasks import tasks_group
from mit_fhir.cli.wording import wording
from mit_fhir.config import CONTEXT_GROUPS, env_settings, load_settings

if TYPE_CHECKING:  # mit_fhir.app imports prometheus_client: see server.prepare_metrics_dir
    from mit_fhir.store.repository import Store
    from mit_fhir.usecases.context import Context

# The store alone (with the log level): db upgrade, export, sync status and retry.
STORE_GROUPS = ("database", "logging")


@click.group(cls=Commands)
def main() -> None:
    """mit-fhir: MIT instruments and formulation forms as FHIR R4, with scores and change flags."""


def _settings(uses: tuple[str, ...]) -> dict[str, Any]:
    from mit_fhir.web.logs import configure

    settings = load_settings(env_settings(), uses)
    configure(settings["LOG_LEVEL"])
    return settings


def _context(*extra: str) -> Context:
    """Store (migrated), catalogue and scorer, from the settings they and `extra` groups need."""
    from mit_fhir.app import create_context

    return create_context(_settings(CONTEXT_GROUPS + extra))


def _store(*extra: str) -> tuple[Store, dict[str, Any]]:
    """The store, reached and migrated as on start-up, with its settings."""
    from mit_fhir.app import default_database_url
    from mit_fhir.store.engine import ensure_reachable
    from mit_fhir.store.migrate import upgrade
    from mit_fhir.store.repository import Store

    settings = _settings(STORE_GROUPS + extra)
    store = Store(settings["DATABASE_URL"] or default_database_url())
    ensure_reachable(store.engine)
    upgrade(store.engine)
    return store, settings


def _app() -> Flask:
    from mit_fhir.app import create_app
    from mit_fhir.web.logs import configure

    app = create_app()
    configure(app.config["LOG_LEVEL"])
    return app


SERVE_HELP = """Serve the FHIR API: gunicorn's master, uvicorn workers, Flask in threads.

Every MIT_FHIR_* setting is validated. --workers processes each run --threads threads for the
requests (the event loop reads a request whole before a thread takes it); `mit-fhir worker`
runs beside them (the schedules; sync when MIT_FHIR_EHR_BASE_URL is set). `make run` serves
on HOST=127.0.0.1 PORT=8080 in development mode (e.g. `make run PORT=9000`). gunicorn's
control socket is off unless --control-socket names this instance's own path (its default path
is one per host).
"""


@main.command(help=SERVE_HELP, epilog=epilog(*COMMON))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to bind (development mode: loopback only)")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="gunicorn worker processes (about one per CPU core)")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64),
              help="threads per worker running the app (requests answered at once per worker)")
@click.option("--control-socket", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="enable gunicorn's control socket (gunicornc) at this instance's own path")
def serve(host: str, port: int, workers: int, threads: int, control_socket: Path | None) -> None:
    from mit_fhir.security.guard import is_loopback
    from mit_fhir.server import prepare_metrics_dir
    from mit_fhir.server import serve as run

    prepare_metrics_dir()  # before the app (and prometheus_client) is imported
    app = _app()
    if app.config["AUTH"] == "none" and not _binds_loopback_only(host, is_loopback):
        fail(f"MIT_FHIR_AUTH=none is development mode without authentication: it serves on "
             f"loopback only, not on {host} (configure MIT_FHIR_AUTH=jwt to serve beyond it)",
             Exit.CONFIG)
    run(app, host, port, workers, threads, control_socket)


def _binds_loopback_only(host: str, is_loopback: Any) -> bool:
    import socket

    if host == "localhost":
        return True
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(is_loopback(a) for a in addresses)


@main.command("check-config", epilog=epilog(*COMMON, Exit.TRY_LATER))
@click.option("--offline", is_flag=True, help="check the settings only, without connecting")
def check_config(offline: bool) -> None:
    """Validate every MIT_FHIR_* setting, then reach the database and compare its migration.

    The database must be at the code's newest migration (run `mit-fhir db upgrade`); nothing
    is changed. A misspelt setting is named with the setting it is probably meant to be.
    """
    from mit_fhir.app import default_database_url
    from mit_fhir.store.engine import create_store_engine, ensure_reachable, where
    from mit_fhir.store.migrate import revisions

    settings = load_settings(env_settings())
    if offline:
        click.echo(f"configuration ok ({len(settings)} settings; database not checked)")
        return
    engine = create_store_engine(settings["DATABASE_URL"] or default_database_url())
    try:
        ensure_reachable(engine)
        current, head = revisions(engine)
    finally:
        engine.dispose()
    if head is None:
        fail("this installation has no migration scripts (a broken install)", Exit.FAILED)
    if current != head:
        state = f"at migration {current}" if current else "empty (no migration applied)"
        fail(f"the database ({where(engine.url)}) is {state}; the code needs {head}: "
             "run `mit-fhir db upgrade`", Exit.TRY_LATER)
    click.echo(f"configuration ok ({len(settings)} settings; {where(engine.url)} "
               f"at migration {head})")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade", epilog=epilog(*COMMON))
def db_upgrade() -> None:
    """Apply the Alembic migrations (also done on start-up); needs only the database URL."""
    _store()
    click.echo("database is at the newest migration")


@main.command(epilog=epilog(*COMMON))
def worker() -> None:
    """Run the assessment schedules and deliver the outbox to the host EHR until interrupted
    (also started by `serve`).

    Reads the database, content (the forms the schedules ask for), MIT_FHIR_EHR_* and
    MIT_FHIR_SYNC_* settings; no HTTP settings. Without MIT_FHIR_EHR_BASE_URL it runs the
    schedules only, every MIT_FHIR_SCHEDULE_INTERVAL_SECONDS.
    """
    import signal
    import threading

    from mit_fhir import metrics
    from mit_fhir.usecases import schedules

    context = _context("outbox", "sync")
    settings = context.settings
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    scheduler = threading.Thread(
        target=schedules.run_every, name="schedules", daemon=True,
        args=(context, settings["SCHEDULE_INTERVAL_SECONDS"], stop))
    if not settings.get("EHR_BASE_URL"):
        click.echo("schedule worker started (no MIT_FHIR_EHR_BASE_URL: nothing to sync)",
                   err=True)
        scheduler.start()
        stop.wait()
        scheduler.join(30)
        return
    from mit_fhir.ehr.factory import build_client
    from mit_fhir.sync.worker import SyncSettings, Worker

    sync_worker = Worker(context.store, build_client(settings),
                         SyncSettings.from_config(settings))
    click.echo(f"sync worker {sync_worker.worker_id} started", err=True)
    metrics.serve_worker_metrics(settings.get("WORKER_METRICS_PORT"))
    scheduler.start()
    sync_worker.run(stop)
    scheduler.join(30)


@main.group("sync")
def sync_group() -> None:
    """The outbox of writes to the host EHR."""


@sync_group.command("status", epilog=epilog(*COMMON))
def sync_status() -> None:
    """Print the status document (as GET /sync/status)."""
    import json
    import time

    from mit_fhir.sync import outbox

    store, _ = _store()
    with store.transaction() as conn:
        click.echo(json.dumps(outbox.status(conn, time.time()), indent=2))


@sync_group.command("retry", epilog=epilog(*COMMON))
@click.argument("ids", nargs=-1, type=int)
def sync_retry(ids: tuple[int, ...]) -> None:
    """Re-queue failed and conflict rows: the given outbox ids, or all of them."""
    import time

    from mit_fhir.sync import outbox

    store, _ = _store()
    with store.transaction() as conn:
        count = outbox.requeue(conn, time.time(), ids or None)
    click.echo(f"re-queued {count} item(s)")


@main.group()
def demo() -> None:
    """The demonstration patient (the MIT case report's 18 months; synthetic values tagged)."""


@demo.command("load", epilog=epilog(*COMMON))
@click.option("--to-ehr", is_flag=True,
              help="also queue the demo data for the EHR when MIT_FHIR_EHR_BASE_URL is set")
def demo_load(to_ehr: bool) -> None:
    """Load the demo patient through the normal submission path; loading again adds nothing."""
    from mit_fhir.usecases.demo import load_demo
    from mit_fhir.usecases.demo_data import DemoError

    context = _context("outbox")
    if context.sync_enabled and not to_ehr:
        fail("MIT_FHIR_EHR_BASE_URL is set: the demo patient would be sent to the EHR; "
             "pass --to-ehr if that EHR is a test system", Exit.FAILED)
    try:
        result = load_demo(context)
    except DemoError as exc:
        fail(f"the demo data do not fit the catalogue: {exc}", Exit.FAILED)
    click.echo(f"demo patient Patient/{result.patient}: {len(result.created)} response(s) "
               f"loaded, {len(result.present)} already present")


@main.command("import", epilog=epilog(*COMMON, Exit.PARTIAL, Exit.DATA, Exit.INTERRUPTED))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10000),
              help="lines (then responses) per database transaction")
@click.option("--progress/--no-progress", default=None,
              help="show progress bars (default: when stderr is a terminal)")
def import_file(file: Path, batch_size: int, progress: bool | None) -> None:
    """Import QuestionnaireResponses from a FHIR Bulk Data NDJSON file (.ndjson or .ndjson.gz).

    Other resource types are skipped; blank lines are ignored. Run it again after an
    interruption to resume; a file imported before reports its responses as already imported.
    Rejected lines are listed with their numbers: exit 3 when others were stored (or were
    already), 65 when none was.
    """
    from mit_fhir.bulk.importer import Importer, rejections

    context = _context("outbox")
    importer = Importer(context, file, batch_size=batch_size, progress=progress)
    try:
        summary = importer.run()
    except KeyboardInterrupt:
        click.echo("interrupted: run the same command again to resume", err=True)
        sys.exit(Exit.INTERRUPTED)
    except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt .gz, a read error
        fail(f"cannot read {file.name} ({type(exc).__name__}: {exc}); nothing was stored, "
             "import the file again once it is complete", Exit.DATA)
    if summary.resumed_at_line is not None:
        click.echo(f"resumed an interrupted import (after line {summary.resumed_at_line})")
    click.echo(f"{summary.file_name} (sha256 {summary.digest[:12]}): {summary.lines} lines")
    click.echo(f"  accepted:          {summary.accepted}")
    click.echo(f"  already imported:  {summary.duplicates}")
    click.echo(f"  skipped (not QuestionnaireResponse): {summary.skipped}")
    click.echo(f"  rejected:          {summary.rejected}")
    for line, reason in rejections(context, summary.digest):
        click.echo(f"  line {line}: {reason}")
    if summary.rejected:
        sys.exit(Exit.PARTIAL if summary.accepted + summary.duplicates else Exit.DATA)


@main.command("export", epilog=epilog(*COMMON))
@click.option("--since", "since", required=True,
              help="FHIR date or dateTime: Observations whose meta.lastUpdated is at or after it")
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              default=None, help="NDJSON file to write (default: standard output)")
def export_observations(since: str, output: Path | None) -> None:
    """Write stored Observations as FHIR Bulk Data NDJSON, one resource per line."""
    from mit_fhir.bulk.export import export, since_instant

    try:
        instant = since_instant(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    store, _ = _store()
    if output is None:
        count = export(store, instant, sys.stdout)
    else:
        with output.open("w", encoding="utf-8") as handle:
            count = export(store, instant, handle)
    click.echo(f"exported {count} Observation(s)", err=True)


main.add_command(wording)
main.add_command(reliable_change, "reliable-change")
main.add_command(tasks_group)
