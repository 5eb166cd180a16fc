"""Table definitions; Alembic migrations in mit_fhir/migrations create them."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

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
    # A stable key for resources that get new versions (a patient's MedicationRequest for one
    # drug, their crisis plan): unique per type, so concurrent plan updates cannot duplicate.
    Column("business_key", String(255), nullable=True),
    UniqueConstraint("resource_type", "business_key", name="uq_resource_business_key"),
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
    # Also serves the per-resource checks of a multi-criterion search (migration 0004).
    Index("ix_search_owner_name", "resource_type", "resource_id", "name"),
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


# Transactional outbox: a row per resource version to deliver to the host EHR, written in the
# same transaction as the resource. Times are epoch seconds (portable across SQLite/PostgreSQL).
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    # pending -> sent | failed | conflict; superseded when a newer version is queued
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # Times handed to a worker. Above 1 (or after a failed attempt) an earlier delivery may have
    # reached the EHR, so creates must then be conditional.
    Column("claims", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float, nullable=True),
    Column("leased_by", String(64), nullable=True),
    # The worker that delivered the row (leased_by is cleared when a row settles).
    Column("delivered_by", String(64), nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("updated_at", Float, nullable=False),
    Index("ix_outbox_due", "state", "next_attempt_at"),
    Index("ix_outbox_resource", "resource_type", "resource_id"),
)

# Where a local resource lives in the EHR: its id there and the version (ETag) last seen.
sync_link = Table(
    "sync_link",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("remote_id", String(128), nullable=False),
    Column("remote_version", String(128), nullable=True),
    Column("synced_version", Integer, nullable=False),
    Column("synced_at", Float, nullable=False),
)
