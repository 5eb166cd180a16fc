"""`mit-fhir wording`: licensed item wording, loaded by a licensed site and never shipped."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from marshmallow import Schema, ValidationError, fields, validate

from mit_fhir.cli.exits import COMMON, Commands, Exit, epilog, fail
from mit_fhir.config import CONTEXT_GROUPS, env_settings, load_settings
from mit_fhir.usecases.catalogue import Catalogue
from mit_fhir.web.logs import configure

if TYPE_CHECKING:  # mit_fhir.app imports prometheus_client: see server.prepare_metrics_dir
    from mit_fhir.usecases.context import Context


class WordingRow(Schema):
    """One line of a licensed-wording CSV."""

    linkId = fields.String(required=True, validate=validate.Length(min=1, max=128))  # noqa: N815
    text = fields.String(required=True, validate=validate.Length(min=1, max=2000))


def _context() -> Context:
    from mit_fhir.app import create_context

    settings = load_settings(env_settings(), CONTEXT_GROUPS)
    configure(settings["LOG_LEVEL"])
    return create_context(settings)


def _questionnaire(qid: str, catalogue: Catalogue) -> dict[str, Any]:
    q: dict[str, Any] | None = catalogue.get(qid)
    if q is None:
        raise click.BadParameter(f"no Questionnaire '{qid}' in the catalogue")
    return q


@click.group(cls=Commands)
def wording() -> None:
    """Licensed item wording for licensed instruments (loaded by a licensed site, never shipped)."""


@wording.command("template", epilog=epilog(Exit.OK, Exit.USAGE, Exit.CONFIG))
@click.argument("questionnaire_id")
def wording_template(questionnaire_id: str) -> None:
    """Print a CSV (linkId,text) listing the licensed-text slots to fill in (no database)."""
    from mit_fhir.usecases.catalogue import licensed_slots

    settings = load_settings(env_settings(), ("content", "logging"))
    q = _questionnaire(questionnaire_id,
                       Catalogue.from_directory(Path(settings["QUESTIONNAIRE_DIR"])))
    out = csv.writer(sys.stdout)
    out.writerow(["linkId", "text"])
    for link_id in licensed_slots(q):
        out.writerow([link_id, ""])


def _read_wording(csv_file: Path) -> dict[str, str]:
    """linkId -> text from the CSV; a bad line stops the load with its number (exit 65)."""
    texts: dict[str, str] = {}
    with csv_file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"linkId", "text"} <= set(reader.fieldnames):
            fail("the CSV needs a header with the columns linkId,text", Exit.DATA)
        for line_no, row in enumerate(reader, start=2):
            try:
                clean = WordingRow().load({"linkId": row["linkId"], "text": row["text"]})
            except ValidationError as exc:
                fail(f"line {line_no}: {exc.normalized_messages()}", Exit.DATA)
            if clean["linkId"] in texts:
                fail(f"line {line_no}: linkId {clean['linkId']} repeats", Exit.DATA)
            texts[clean["linkId"]] = clean["text"]
    if not texts:
        # Loading nothing would silently wipe the language's wording; `wording clear` does that.
        fail("the CSV has no rows: nothing loaded (use 'wording clear')", Exit.DATA)
    return texts


@wording.command("load", epilog=epilog(*COMMON, Exit.DATA))
@click.argument("questionnaire_id")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--language", default=None, help="BCP-47 code; default: the form's language")
def wording_load(questionnaire_id: str, csv_file: Path, language: str | None) -> None:
    """Load item wording from CSV_FILE (columns linkId,text) into the served Questionnaire."""
    from mit_fhir.errors import FhirError
    from mit_fhir.usecases.catalogue import load_wording

    context = _context()
    q = _questionnaire(questionnaire_id, context.catalogue)
    texts = _read_wording(csv_file)
    try:
        with context.store.transaction() as conn:
            count = load_wording(conn, q, texts, language or q.get("language", "en"))
    except FhirError as exc:
        lines = "; ".join(i.diagnostics for i in exc.issues[:10])
        fail(f"{exc.message}: {lines}", Exit.DATA)
    click.echo(f"loaded {count} item texts into {questionnaire_id}")


@wording.command("clear", epilog=epilog(*COMMON))
@click.argument("questionnaire_id")
@click.option("--language", default=None)
def wording_clear(questionnaire_id: str, language: str | None) -> None:
    """Remove the site's wording for a Questionnaire (one language)."""
    from mit_fhir.usecases.catalogue import load_wording

    context = _context()
    q = _questionnaire(questionnaire_id, context.catalogue)
    with context.store.transaction() as conn:
        load_wording(conn, q, {}, language or q.get("language", "en"))
    click.echo(f"cleared the wording of {questionnaire_id}")
