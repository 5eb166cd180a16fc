"""Server-side sessions: the cookie holds a random value, the table its hash and the data."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select, update

from mit_fhir.ui.tables import ui_session

COOKIE = "mit_fhir_app"
Data = dict[str, Any]


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(conn: Connection, data: Data, ttl: float, now: float | None = None) -> str:
    """Store a new session; return the cookie value (never stored)."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    conn.execute(insert(ui_session).values(id=_key(token), created_at=now, expires_at=now + ttl,
                                           data=orjson.dumps(data).decode()))
    # Expired sessions go as new ones arrive: no sweeper process is needed.
    conn.execute(delete(ui_session).where(ui_session.c.expires_at < now))
    return token


def load(conn: Connection, token: str | None, now: float | None = None) -> Data | None:
    """The session's data, or None when the cookie is missing, unknown or expired."""
    if not token or len(token) > 100:
        return None
    row = conn.execute(select(ui_session.c.data, ui_session.c.expires_at)
                       .where(ui_session.c.id == _key(token))).first()
    if row is None or row.expires_at < (time.time() if now is None else now):
        return None
    data: Data = orjson.loads(row.data)
    return data


def save(conn: Connection, token: str, data: Data) -> None:
    conn.execute(update(ui_session).where(ui_session.c.id == _key(token))
                 .values(data=orjson.dumps(data).decode()))


def take(conn: Connection, token: str | None, now: float | None = None) -> Data | None:
    """Load and delete a session in one step (a pending launch is used once)."""
    data = load(conn, token, now)
    if data is not None and token:
        gone = conn.execute(delete(ui_session).where(ui_session.c.id == _key(token))).rowcount
        if gone != 1:  # a concurrent callback with the same cookie took it first
            return None
    return data


def drop(conn: Connection, token: str | None) -> None:
    if token:
        conn.execute(delete(ui_session).where(ui_session.c.id == _key(token)))
