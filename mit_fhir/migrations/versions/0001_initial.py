"""Initial schema: resources, search index, licensed wording.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.String(40), nullable=False),
        sa.Column("sort_date", sa.String(40), nullable=True),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_table(
        "search_index",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(512), nullable=False),
    )
    op.create_index("ix_search_lookup", "search_index", ["resource_type", "name", "value"])
    op.create_index("ix_search_owner", "search_index", ["resource_type", "resource_id"])
    op.create_table(
        "licensed_wording",
        sa.Column("questionnaire_id", sa.String(64), primary_key=True),
        sa.Column("link_id", sa.String(128), primary_key=True),
        sa.Column("language", sa.String(16), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("loaded_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("licensed_wording")
    op.drop_index("ix_search_owner", "search_index")
    op.drop_index("ix_search_lookup", "search_index")
    op.drop_table("search_index")
    op.drop_table("resource")
