"""Table definitions; Alembic migrations in mit_fhir/migrations create them."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

# One row per stored FHIR resource (current version). `content` is the resource's JSON.
resource = Table(
    "resource",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", String(40), nullable=False),
    # Normalised UTC instant used by _sort=date (authored / effective); null when absent.
    Column("sort_date", String(40), nullable=True),
    Column("content", Text, nullable=False),
)

# Search parameter values, one row per (resource, parameter, value). Tokens are stored twice:
# "system|code" under the parameter name and "code" under "<name>:code" so both query forms
# use the index.
search_index = Table(
    "search_index",
    metadata,
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("value", String(512), nullable=False),
    Index("ix_search_lookup", "resource_type", "name", "value"),
    Index("ix_search_owner", "resource_type", "resource_id"),
)

# Item wording a licensed site loads for a licensed instrument (never shipped in the repository).
licensed_wording = Table(
    "licensed_wording",
    metadata,
    Column("questionnaire_id", String(64), primary_key=True),
    Column("link_id", String(128), primary_key=True),
    Column("language", String(16), primary_key=True),
    Column("text", Text, nullable=False),
    Column("loaded_at", String(40), nullable=False),
)
