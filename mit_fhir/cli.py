"""The `mit-fhir` command: serve, database, wording, cohort analysis, bulk import/export, config."""

from __future__ import annotations

import csv
import sys
import zlib
from pathlib import Path
from typing import Any

import click
from flask import Flask
from marshmallow import Schema, ValidationError, fields, validate

from mit_fhir.cohort import reliable_change
from mit_fhir.config import ConfigError, env_settings, load_settings


@click.group()
def main() -> None:
    """mit-fhir: MIT instruments and formulation forms as FHIR R4, with scores and change flags."""


def _app() -> Flask:
    from mit_fhir.app import create_app
    from mit_fhir.logs import configure

    try:
        app = create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    configure(app.config["LOG_LEVEL"])
    return app


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the FHIR API in production: gunicorn's master, uvicorn workers, Flask in threads."""
    from mit_fhir.security.guard import is_loopback
    from mit_fhir.server import prepare_metrics_dir
    from mit_fhir.server import serve as run

    prepare_metrics_dir()  # before the app (and prometheus_client) is imported
    app = _app()
    if app.config["AUTH"] == "none" and not _binds_loopback_only(host, is_loopback):
        raise click.ClickException(
            f"MIT_FHIR_AUTH=none is development mode without authentication: it serves on "
            f"loopback only, not on {host} (configure MIT_FHIR_AUTH=jwt to serve beyond it)")
    run(app, host, port, workers, threads)


def _binds_loopback_only(host: str, is_loopback: Any) -> bool:
    import socket

    if host == "localhost":
        return True
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(is_loopback(a) for a in addresses)


@main.command("check-config")
def check_config() -> None:
    """Validate the MIT_FHIR_* configuration; exit 1 with the reason when it is wrong."""
    try:
        settings = load_settings(env_settings())
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(f"configuration ok ({len(settings)} settings)")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations (also done on start-up)."""
    _app()
    click.echo("database is at the newest migration")


@main.command()
def worker() -> None:
    """Deliver the outbox to the host EHR until interrupted (also started by `serve`)."""
    import signal
    import threading

    from mit_fhir import metrics
    from mit_fhir.ehr.factory import build_client
    from mit_fhir.sync.worker import SyncSettings, Worker

    app = _app()
    settings = app.config
    if not settings.get("EHR_BASE_URL"):
        raise click.ClickException("MIT_FHIR_EHR_BASE_URL is not set: nothing to sync to")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sync_worker = Worker(app.extensions["mit_fhir"].store, build_client(dict(settings)),
                         SyncSettings.from_config(dict(settings)))
    click.echo(f"sync worker {sync_worker.worker_id} started", err=True)
    metrics.serve_worker_metrics(settings.get("WORKER_METRICS_PORT"))
    sync_worker.run(stop)


@main.group("sync")
def sync_group() -> None:
    """The outbox of writes to the host EHR."""


@sync_group.command("status")
def sync_status() -> None:
    """Print the status document (as GET /sync/status)."""
    import json
    import time

    from mit_fhir.sync import outbox

    app = _app()
    with app.extensions["mit_fhir"].store.transaction() as conn:
        click.echo(json.dumps(outbox.status(conn, time.time()), indent=2))


@sync_group.command("retry")
@click.argument("ids", nargs=-1, type=int)
def sync_retry(ids: tuple[int, ...]) -> None:
    """Re-queue failed and conflict rows: the given outbox ids, or all of them."""
    import time

    from mit_fhir.sync import outbox

    app = _app()
    with app.extensions["mit_fhir"].store.transaction() as conn:
        count = outbox.requeue(conn, time.time(), ids or None)
    click.echo(f"re-queued {count} item(s)")


class WordingRow(Schema):
    """One line of a licensed-wording CSV."""

    linkId = fields.String(required=True, validate=validate.Length(min=1, max=128))  # noqa: N815
    text = fields.String(required=True, validate=validate.Length(min=1, max=2000))


@main.group()
def wording() -> None:
    """Licensed item wording for licensed instruments (loaded by a licensed site, never shipped)."""


@wording.command("template")
@click.argument("questionnaire_id")
def wording_template(questionnaire_id: str) -> None:
    """Print a CSV (linkId,text) listing the licensed-text slots to fill in."""
    from mit_fhir.catalogue import licensed_slots

    q = _questionnaire(questionnaire_id)
    out = csv.writer(sys.stdout)
    out.writerow(["linkId", "text"])
    for link_id in licensed_slots(q):
        out.writerow([link_id, ""])


@wording.command("load")
@click.argument("questionnaire_id")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--language", default=None, help="BCP-47 code; default: the form's language")
def wording_load(questionnaire_id: str, csv_file: Path, language: str | None) -> None:
    """Load item wording from CSV_FILE (columns linkId,text) into the served Questionnaire."""
    from mit_fhir.catalogue import load_wording
    from mit_fhir.errors import FhirError

    app = _app()
    q = _questionnaire(questionnaire_id, app)
    texts: dict[str, str] = {}
    with csv_file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"linkId", "text"} <= set(reader.fieldnames):
            raise click.UsageError("the CSV needs a header with the columns linkId,text")
        for line_no, row in enumerate(reader, start=2):
            try:
                clean = WordingRow().load({"linkId": row["linkId"], "text": row["text"]})
            except ValidationError as exc:
                raise click.UsageError(f"line {line_no}: {exc.normalized_messages()}") from None
            if clean["linkId"] in texts:
                raise click.UsageError(f"line {line_no}: linkId {clean['linkId']} repeats")
            texts[clean["linkId"]] = clean["text"]
    if not texts:
        # Loading nothing would silently wipe the language's wording; `wording clear` does that.
        raise click.UsageError("the CSV has no rows: nothing loaded (use 'wording clear')")
    try:
        with app.extensions["mit_fhir"].store.transaction() as conn:
            count = load_wording(conn, q, texts, language or q.get("language", "en"))
    except FhirError as exc:
        lines = "; ".join(i.diagnostics for i in exc.issues[:10])
        raise click.UsageError(f"{exc.message}: {lines}") from None
    click.echo(f"loaded {count} item texts into {questionnaire_id}")


@wording.command("clear")
@click.argument("questionnaire_id")
@click.option("--language", default=None)
def wording_clear(questionnaire_id: str, language: str | None) -> None:
    """Remove the site's wording for a Questionnaire (one language)."""
    from mit_fhir.catalogue import load_wording

    app = _app()
    q = _questionnaire(questionnaire_id, app)
    with app.extensions["mit_fhir"].store.transaction() as conn:
        load_wording(conn, q, {}, language or q.get("language", "en"))
    click.echo(f"cleared the wording of {questionnaire_id}")


def _questionnaire(qid: str, app: Flask | None = None) -> dict[str, Any]:
    app = app or _app()
    q: dict[str, Any] | None = app.extensions["mit_fhir"].catalogue.get(qid)
    if q is None:
        raise click.BadParameter(f"no Questionnaire '{qid}' in the catalogue")
    return q


@main.group()
def demo() -> None:
    """The demonstration patient (the MIT case report's 18 months; synthetic values tagged)."""


@demo.command("load")
@click.option("--to-ehr", is_flag=True,
              help="also queue the demo data for the EHR when MIT_FHIR_EHR_BASE_URL is set")
def demo_load(to_ehr: bool) -> None:
    """Load the demo patient through the normal submission path; loading again adds nothing."""
    from mit_fhir.demo import DemoError, load_demo

    app = _app()
    context = app.extensions["mit_fhir"]
    if context.sync_enabled and not to_ehr:
        raise click.ClickException(
            "MIT_FHIR_EHR_BASE_URL is set: the demo patient would be sent to the EHR; "
            "pass --to-ehr if that EHR is a test system")
    try:
        result = load_demo(context)
    except DemoError as exc:
        raise click.ClickException(f"the demo data do not fit the catalogue: {exc}") from None
    click.echo(f"demo patient Patient/{result.patient}: {len(result.created)} response(s) "
               f"loaded, {len(result.present)} already present")


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10000),
              help="lines (then responses) per database transaction")
@click.option("--progress/--no-progress", default=None,
              help="show progress bars (default: when stderr is a terminal)")
def import_file(file: Path, batch_size: int, progress: bool | None) -> None:
    """Import QuestionnaireResponses from a FHIR Bulk Data NDJSON file (.ndjson or .ndjson.gz).

    Other resource types are skipped; blank lines are ignored. Run it again after an
    interruption to resume; a file imported before reports its responses as already imported.
    Exit status 1 when some lines were rejected (each is listed with its line number).
    """
    from mit_fhir.bulk.importer import Importer, rejections

    app = _app()
    context = app.extensions["mit_fhir"]
    importer = Importer(context, file, batch_size=batch_size, progress=progress)
    try:
        summary = importer.run()
    except KeyboardInterrupt:
        click.echo("interrupted: run the same command again to resume", err=True)
        sys.exit(130)
    except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt .gz, a read error
        raise click.ClickException(
            f"cannot read {file.name} ({type(exc).__name__}: {exc}); nothing was stored, "
            "import the file again once it is complete") from None
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
        sys.exit(1)


@main.command("export")
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
    store = _app().extensions["mit_fhir"].store
    if output is None:
        count = export(store, instant, sys.stdout)
    else:
        with output.open("w", encoding="utf-8") as handle:
            count = export(store, instant, handle)
    click.echo(f"exported {count} Observation(s)", err=True)


main.add_command(reliable_change, "reliable-change")
