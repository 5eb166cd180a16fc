"""The SMART app pages: server-side sessions and in-progress form drafts.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ui_session",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_ui_session_expires", "ui_session", ["expires_at"])
    op.create_table(
        "ui_draft",
        sa.Column("patient", sa.String(128), primary_key=True),
        sa.Column("questionnaire_id", sa.String(64), primary_key=True),
        sa.Column("author", sa.String(255), primary_key=True),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ui_draft")
    op.drop_index("ix_ui_session_expires", "ui_session")
    op.drop_table("ui_session")
