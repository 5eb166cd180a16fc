"""Persistence: SQLAlchemy Core tables, Alembic migrations and the resource repository."""
