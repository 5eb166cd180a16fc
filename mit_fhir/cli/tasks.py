"""`mit-fhir tasks`: the SDC Tasks of the self-report schedules, from the command line.

Commands print counts and Task ids only, never patient data: their output may reach a
site's monitoring or a portal's reminder job (see docs/operations/reminders.md).
"""

from __future__ import annotations

from datetime import UTC, datetime

import click
from dateutil.parser import isoparse

from mit_fhir.cli.exits import COMMON, Commands, epilog


@click.group("tasks", cls=Commands)
def tasks_group() -> None:
    """Forms assigned to patients (SDC Tasks): what is due, the schedules that create them."""


def _instant(text: str | None) -> datetime:
    """--at as a timezone-aware instant (a date is its midnight, UTC unless an offset is given)."""
    if text is None:
        return datetime.now(UTC)
    try:
        moment = isoparse(text)
    except ValueError:
        raise click.BadParameter("not an ISO 8601 date or date-time", param_hint="--at") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


DUE_HELP = """Print how many open Tasks are due, then their ids, one a line (earliest due first).

Due: open (requested, received, accepted, ready, in-progress, on-hold) and available (its
period has started) at --at (default now). By default only the Tasks the patient performs
(performerType Patient: the self-report forms, the ones a reminder may go to); --all: every
Task, the clinician-rated ones too. --overdue: only those whose due date (the period's end)
has passed. Reads the store only; prints no patient data, so a cron job may pass its output on
(docs/operations/reminders.md). Example:

\b
    $ mit-fhir tasks due --overdue
    2 patient-performed task(s) overdue at 2026-12-02T06:00:00Z
    5f0c7c8e-...
    9a1d2b44-...
"""


@tasks_group.command("due", help=DUE_HELP, epilog=epilog(*COMMON))
@click.option("--overdue", is_flag=True, help="only Tasks past their due date")
@click.option("--all", "every", is_flag=True,
              help="every open Task, not only those the patient performs")
@click.option("--at", "at", metavar="DATE",
              help="the instant to ask about (ISO 8601 date or date-time; default now)")
def due(overdue: bool, every: bool, at: str | None) -> None:
    from mit_fhir.cli import _store
    from mit_fhir.usecases.tasks import due_tasks

    moment = _instant(at)
    # "content" holds MIT_FHIR_TASK_WINDOW_DAYS: a bad value exits 78 here as in `schedule`.
    store, _ = _store("content")
    try:
        with store.transaction() as conn:
            found = due_tasks(conn, moment, overdue, patient_performed=not every)
    finally:
        store.dispose()
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    which = "" if every else "patient-performed "
    click.echo(f"{len(found)} {which}task(s) {'overdue' if overdue else 'due'} at {stamp}")
    for task in found:
        click.echo(task["id"])


@tasks_group.command("schedule", epilog=epilog(*COMMON))
@click.option("--at", "at", metavar="DATETIME",
              help="run as at this instant (ISO 8601; UTC unless it says otherwise); default "
                   "now. It writes: the Tasks due at that instant are stored")
@click.option("--dry-run", is_flag=True,
              help="count what the run would create, supersede and complete; write nothing")
def schedule(at: str | None, dry_run: bool) -> None:
    """Run the assessment schedules once (as the worker does every interval): create the
    Tasks due, supersede the missed ones, complete the schedules that ended. Prints counts.
    With --dry-run the same run is made and rolled back: counts only, nothing stored."""
    from mit_fhir.cli import _context
    from mit_fhir.usecases import schedules

    moment = _instant(at)
    context = _context("outbox")
    try:
        result = schedules.run(context, moment, dry_run=dry_run)
    finally:
        context.store.dispose()
    if dry_run:
        click.echo("dry run: nothing was written")
    click.echo(f"created:    {result.created}")
    click.echo(f"superseded: {result.superseded}")
    click.echo(f"completed:  {result.completed}")
