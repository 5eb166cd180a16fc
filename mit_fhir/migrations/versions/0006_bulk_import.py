"""Bulk import: progress per file (for resuming), staged responses, rejections, identities.

`bulk_import` is keyed by the SHA-256 of the file; `bulk_staged` holds the validated responses
of an import until they are scored in (patient, authored) order, then they are deleted;
`imported_response` remembers every imported response's identity so a second import of the
same response is reported as already imported.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_import",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("lines", sa.Integer, nullable=False),
        sa.Column("byte_offset", sa.BigInteger, nullable=False),
        sa.Column("accepted", sa.Integer, nullable=False),
        sa.Column("duplicates", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "bulk_rejection",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_table(
        "bulk_staged",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True),
        sa.Column("patient", sa.String(255), nullable=False),
        sa.Column("authored", sa.String(40), nullable=False),
        sa.Column("identity", sa.String(80), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.UniqueConstraint("digest", "identity", name="uq_bulk_staged_identity"),
    )
    op.create_index("ix_bulk_staged_order", "bulk_staged",
                    ["digest", "patient", "authored", "line"])
    op.create_table(
        "imported_response",
        sa.Column("identity", sa.String(80), primary_key=True),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("imported_response")
    op.drop_index("ix_bulk_staged_order", "bulk_staged")
    op.drop_table("bulk_staged")
    op.drop_table("bulk_rejection")
    op.drop_table("bulk_import")
