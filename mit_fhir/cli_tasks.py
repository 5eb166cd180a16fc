"""`mit-fhir tasks`: the SDC Tasks of the self-report schedules, from the command line.

Commands print counts and Task ids only, never patient data: their output may reach a
site's monitoring or a portal's reminder job (see docs/operations/reminders.md).
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from mit_fhir.exits import COMMON, Commands, epilog


@click.group("tasks", cls=Commands)
def tasks_group() -> None:
    """Forms assigned to patients (SDC Tasks): what is due, the schedules that create them."""


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
