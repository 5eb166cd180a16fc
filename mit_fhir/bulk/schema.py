"""Tables of the bulk import (created by migration 0006), on the store's shared metadata."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from mit_fhir.store.schema import metadata

# One row per imported file, keyed by its SHA-256: where pass 1 stopped, and the counts so far.
# phase: staging (reading the file) -> scoring (storing in patient/date order) -> done.
bulk_import = Table(
    "bulk_import",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("file_name", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("phase", String(16), nullable=False),
    Column("lines", Integer, nullable=False),  # lines read and settled by pass 1
    Column("byte_offset", BigInteger, nullable=False),  # uncompressed byte offset after them
    Column("accepted", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Why a line was not imported (validation messages: rules and linkIds, never answers).
bulk_rejection = Table(
    "bulk_rejection",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("reason", Text, nullable=False),
)

# Validated responses waiting to be scored in (patient, authored, line) order; deleted once stored.
bulk_staged = Table(
    "bulk_staged",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("patient", String(255), nullable=False),
    Column("authored", String(40), nullable=False),
    Column("identity", String(80), nullable=False),
    Column("content", Text, nullable=False),
    UniqueConstraint("digest", "identity", name="uq_bulk_staged_identity"),
    Index("ix_bulk_staged_order", "digest", "patient", "authored", "line"),
)

# The identity (hashed identifier, else hashed content) of every imported response.
imported_response = Table(
    "imported_response",
    metadata,
    Column("identity", String(80), primary_key=True),
    Column("resource_id", String(64), nullable=False),
    Column("digest", String(64), nullable=False),
)
