"""The exit statuses of `mit-fhir` commands: one table, printed in each command's --help.

The numbers follow sysexits.h where it has one (65 data, 69 unavailable, 75 try again later,
78 configuration), so a supervisor or a Kubernetes Job can tell "fix the settings" from "the
database is down" from "some lines of the file were bad" without reading the message.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any, NoReturn

import click


class Exit(IntEnum):
    """Exit statuses; each command's --help lists the ones it can return."""

    OK = 0
    FAILED = 1
    USAGE = 2
    PARTIAL = 3
    DATA = 65
    UNAVAILABLE = 69
    TRY_LATER = 75
    CONFIG = 78
    INTERRUPTED = 130


MEANING = {
    Exit.OK: "done",
    Exit.FAILED: "refused (the message says why)",
    Exit.USAGE: "bad command line (an unknown option, a missing argument)",
    Exit.PARTIAL: "partly done: some input was rejected, the rest was stored",
    Exit.DATA: "bad input: a file or value that cannot be used; nothing was stored",
    Exit.UNAVAILABLE: "the database cannot be reached or opened",
    Exit.TRY_LATER: "the database is not at the code's migration (run `mit-fhir db upgrade`)",
    Exit.CONFIG: "bad configuration (a MIT_FHIR_* setting; the message names it)",
    Exit.INTERRUPTED: "interrupted (Ctrl-C)",
}

# What every command that loads settings and opens the database can end with.
COMMON = (Exit.OK, Exit.FAILED, Exit.USAGE, Exit.UNAVAILABLE, Exit.CONFIG)


def epilog(*codes: Exit) -> str:
    """The "Exit status" paragraph of a command's --help (click keeps `\\b` blocks as typed)."""
    lines = [f"  {int(code):>3}  {MEANING[code]}" for code in sorted(set(codes))]
    return "\b\nExit status:\n" + "\n".join(lines)


class CommandError(click.ClickException):
    """A failure with its exit status, printed as one line (no traceback)."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        # click declares exit_code per class; one class carrying each status is what we want.
        self.exit_code = int(code)  # type: ignore[misc]


def fail(message: str, code: Exit) -> NoReturn:
    """Stop the command with this message and status."""
    raise CommandError(message, code)


def translating(run: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a click callback: configuration and database failures become one line and a status."""
    from functools import wraps

    from mit_fhir.config import ConfigError
    from mit_fhir.store.engine import DatabaseUnavailable, UnsupportedDatabase

    @wraps(run)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return run(*args, **kwargs)
        except ConfigError as exc:
            fail(str(exc), Exit.CONFIG)
        except UnsupportedDatabase as exc:
            fail(f"invalid configuration: MIT_FHIR_DATABASE_URL: {exc}", Exit.CONFIG)
        except DatabaseUnavailable as exc:
            fail(str(exc), Exit.UNAVAILABLE)

    return wrapper


class Commands(click.Group):
    """A group whose commands all report configuration and database failures the same way."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if cmd.callback is not None and not isinstance(cmd, click.Group):
            cmd.callback = translating(cmd.callback)
        super().add_command(cmd, name)

    def group(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", Commands)
        return super().group(*args, **kwargs)
