"""Alembic migration environment for the mit-fhir database."""
