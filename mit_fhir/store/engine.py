"""The database URL turned into an engine, and a failure to reach it told in one line.

The store runs on PostgreSQL through psycopg 3 and on SQLite. Hosting platforms hand out
`postgres://` URLs (Heroku, Render, Fly) and many people write `postgresql://`; both name
PostgreSQL through the installed psycopg 3 here, so `NoSuchModuleError` (SQLAlchemy knows no
`postgres` dialect) or a missing psycopg2 is never what a deployer meets. Another driver
(`postgresql+psycopg2://`, `mysql://`) is refused with the spelling to use.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

SPELLING = "postgresql://USER@HOST:PORT/DATABASE (psycopg 3) or sqlite:///PATH"
_POSTGRES = {"postgres", "postgresql", "postgres+psycopg", "postgresql+psycopg"}
_SQLITE = {"sqlite", "sqlite+pysqlite"}
# Seconds a PostgreSQL connection attempt may take: an address that drops packets (a wrong
# host, a firewall) would otherwise hang start-up for the kernel's TCP timeout (minutes).
CONNECT_TIMEOUT = 10


class UnsupportedDatabase(ValueError):
    """The URL names no database this service runs on; the message gives the spelling."""


class DatabaseUnavailable(Exception):
    """The database cannot be reached or opened; the message is one line, without password."""


def engine_url(text: str) -> str:
    """The URL in the store's own spelling (postgresql+psycopg://... or sqlite://...)."""
    # Messages here never quote the URL: its password would reach the terminal and the logs.
    try:
        url = make_url(text)
    except ArgumentError:
        raise UnsupportedDatabase(f"not a database URL; write {SPELLING}") from None
    except ValueError:  # SQLAlchemy's int() of the port: "h:notaport", "h1:5432,h2:5432"
        raise UnsupportedDatabase("the port is not a number (one HOST:PORT only; several "
                                  f"hosts go in ?host=HOST:PORT&host=...); write {SPELLING}"
                                  ) from None
    if "@" in (url.host or ""):
        # The parser ends the password at its first raw "@": the password's tail would be
        # taken for the host and printed in every connection error (%40 decodes as it should).
        raise UnsupportedDatabase("an '@' in the user or password must be percent-encoded "
                                  f"as %40; write {SPELLING}")
    if url.drivername in _POSTGRES:
        url = url.set(drivername="postgresql+psycopg")
    elif url.drivername not in _SQLITE:
        raise UnsupportedDatabase(f"'{url.drivername}' is not supported (the installed "
                                  f"drivers are psycopg 3 and sqlite3); write {SPELLING}")
    rendered: str = url.render_as_string(hide_password=False)
    return rendered


def create_store_engine(text: str) -> Engine:
    """An engine for the store, tuned per database (see the comments)."""
    url = make_url(engine_url(text))
    # hide_parameters: a database error's text would otherwise quote the row (a response,
    # a crisis contact's phone) and reach the logs through the exception.
    kwargs: dict[str, Any] = {"future": True, "hide_parameters": True}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 5}
    else:
        # A pooled connection the server closed (restart, failover, idle timeout) is
        # replaced before use instead of failing a request.
        kwargs["pool_pre_ping"] = True
        # No server-side prepared statements: after five runs PostgreSQL may switch a
        # prepared search to a generic plan, blind to the parameter values, which drives
        # from the least selective criterion (seconds per search instead of
        # milliseconds). Also what a transaction-pooling PgBouncer needs.
        kwargs["connect_args"] = {"prepare_threshold": None}
        if "connect_timeout" not in url.query:
            kwargs["connect_args"]["connect_timeout"] = CONNECT_TIMEOUT
    return create_engine(url, **kwargs)


def where(url: URL) -> str:
    """Host, port and database of a URL (never the user's password), for messages."""
    if url.get_backend_name() == "sqlite":
        return f"SQLite file {url.database}" if url.database else "SQLite in memory"
    port = f":{url.port}" if url.port else ""
    return f"PostgreSQL at {url.host or 'the local socket'}{port}, database {url.database}"


def unavailable(engine: Engine, exc: DBAPIError | NoSuchModuleError) -> DatabaseUnavailable:
    """One line naming the database and the cause of a failed connection."""
    orig = getattr(exc, "orig", None) or exc
    # psycopg puts the cause after the server's address and adds a hint on a second line.
    cause = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    cause = cause.removeprefix("connection failed: ").replace("FATAL:  ", "")
    password = engine.url.password
    if password:  # the server does not echo it; a driver might, and it must not reach a log
        cause = cause.replace(str(password), "***")
    return DatabaseUnavailable(f"cannot reach the database ({where(engine.url)}): {cause}")


def ensure_reachable(engine: Engine) -> None:
    """Open one connection now, so an unreachable database is one clear error at start-up."""
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        raise unavailable(engine, exc) from None
