"""Sync to the host EHR: business keys, the transactional outbox and remote links.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("resource") as batch:
        batch.add_column(sa.Column("business_key", sa.String(255), nullable=True))
        batch.create_unique_constraint(
            "uq_resource_business_key", ["resource_type", "business_key"]
        )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("leased_by", sa.String(64), nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_outbox_due", "outbox", ["state", "next_attempt_at"])
    op.create_index("ix_outbox_resource", "outbox", ["resource_type", "resource_id"])
    op.create_table(
        "sync_link",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("remote_id", sa.String(128), nullable=False),
        sa.Column("remote_version", sa.String(128), nullable=True),
        sa.Column("synced_version", sa.Integer, nullable=False),
        sa.Column("synced_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sync_link")
    op.drop_index("ix_outbox_resource", "outbox")
    op.drop_index("ix_outbox_due", "outbox")
    op.drop_table("outbox")
    with op.batch_alter_table("resource") as batch:
        batch.drop_constraint("uq_resource_business_key", type_="unique")
        batch.drop_column("business_key")
