"""`mit-fhir tasks`: the SDC Tasks of the self-report schedules, from the command line.

Commands print counts and Task ids only, never patient data: their output may reach a
site's monitoring or a portal's reminder job (see docs/operations/reminders.md).
"""

from __future__ import annotations

import click

from mit_fhir.exits import Commands


@click.group("tasks", cls=Commands)
def tasks_group() -> None:
    """Forms assigned to patients (SDC Tasks): what is due, the schedules that create them."""
