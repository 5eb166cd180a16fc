"""Run Alembic migrations programmatically (on start-up and from `mit-fhir db upgrade`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# PostgreSQL advisory lock held while migrating: replicas that start together on one database
# (and the migrate Job) take turns; the later ones find the schema current and do nothing.
MIGRATION_LOCK = 0x6D69_7466_6869_72  # "mitfhir"


def alembic_config(engine: Engine) -> Config:
    """An Alembic Config bound to this engine, independent of any alembic.ini on disk."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    url = engine.url.render_as_string(hide_password=False)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # ConfigParser escaping
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` inside one transaction."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def is_current(engine: Engine) -> bool:
    """True when the database is at the newest migration (False when none are installed)."""
    current, head = revisions(engine)
    # An install without its migration scripts (head None) is broken, not "current".
    return head is not None and current == head


def revisions(engine: Engine) -> tuple[str | None, str | None]:
    """(the database's migration revision, the code's newest); None where there is none."""
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision(), head
