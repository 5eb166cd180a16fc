"""Tables of the SMART app pages: server-side sessions and form drafts (migration 0005)."""

from __future__ import annotations

from sqlalchemy import Column, Float, String, Table, Text

from mit_fhir.store.schema import metadata

# One row per browser session. `id` is the SHA-256 of the cookie's random value, so the table
# alone cannot be replayed as cookies. `data` (JSON) holds the pending launch (state, PKCE
# verifier) or the tokens and launch context; it never leaves the server.
ui_session = Table(
    "ui_session",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("data", Text, nullable=False),
)

# A form being filled in (a QuestionnaireResponse with status in-progress), one per patient,
# form and author; replaced on every save, removed when the completed response is submitted.
ui_draft = Table(
    "ui_draft",
    metadata,
    Column("patient", String(128), primary_key=True),
    Column("questionnaire_id", String(64), primary_key=True),
    Column("author", String(255), primary_key=True),
    Column("content", Text, nullable=False),
    Column("updated_at", String(40), nullable=False),
)
