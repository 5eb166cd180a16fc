"""`mit-fhir tasks`: the SDC Tasks of the self-report schedules, from the command line.

Commands print counts and Task ids only, never patient data: their output may reach a
site's monitoring or a portal's reminder job (see docs/operations/reminders.md).
"""

from __future__ import annotations

from datetime import UTC, datetime

import click
from dateutil.parser import isoparse

from mit_fhir.exits import COMMON, Commands, epilog


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
period has started) at --at (default now). --overdue: only those whose due date (the period's
end) has passed. Reads the store only; prints no patient data, so a cron job may pass its
output on (docs/operations/reminders.md). Example:

\b
    $ mit-fhir tasks due --overdue
    2 task(s) overdue at 2026-12-02T06:00:00Z
    5f0c7c8e-...
    9a1d2b44-...
"""


@tasks_group.command("due", help=DUE_HELP, epilog=epilog(*COMMON))
@click.option("--overdue", is_flag=True, help="only Tasks past their due date")
@click.option("--at", "at", metavar="DATE",
              help="the instant to ask about (ISO 8601 date or date-time; default now)")
def due(overdue: bool, at: str | None) -> None:
    from mit_fhir.cli import _store
    from mit_fhir.tasks import due_tasks

    moment = _instant(at)
    store, _ = _store()
    with store.transaction() as conn:
        found = due_tasks(conn, moment, overdue)
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    click.echo(f"{len(found)} task(s) {'overdue' if overdue else 'due'} at {stamp}")
    for task in found:
        click.echo(task["id"])


def _moment(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("a date or date and time, e.g. 2026-01-05T08:00:00Z",
                                 param_hint="--at") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@tasks_group.command("schedule", epilog=epilog(*COMMON))
@click.option("--at", "at", metavar="DATETIME",
              help="run as at this instant (ISO 8601; UTC unless it says otherwise); default now")
def schedule(at: str | None) -> None:
    """Run the assessment schedules once (as the worker does every interval): create the
    Tasks due, supersede the missed ones, complete the schedules that ended. Prints counts."""
    from mit_fhir import schedules
    from mit_fhir.cli import _context

    moment = _moment(at)
    result = schedules.run(_context("outbox"), moment)
    click.echo(f"created:    {result.created}")
    click.echo(f"superseded: {result.superseded}")
    click.echo(f"completed:  {result.completed}")
