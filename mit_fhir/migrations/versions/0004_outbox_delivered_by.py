"""Who delivered an outbox row; search-index probes by resource and parameter name.

`outbox.delivered_by`: the worker that settled the row as sent (`leased_by` is cleared when a
row settles), for operators and for the multi-worker test.

`ix_search_owner` (resource_type, resource_id) becomes (resource_type, resource_id, name): a
search with several criteria checks each further criterion per candidate resource, and on
PostgreSQL, before the planner has statistics (a new deployment, until autovacuum's first
ANALYZE), it otherwise probes ix_search_lookup and filters on resource_id, which is quadratic
in the patient's history. The old index is a prefix of the new one, so it goes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("delivered_by", sa.String(64), nullable=True))
    op.create_index("ix_search_owner_name", "search_index",
                    ["resource_type", "resource_id", "name"])
    op.drop_index("ix_search_owner", "search_index")


def downgrade() -> None:
    op.create_index("ix_search_owner", "search_index", ["resource_type", "resource_id"])
    op.drop_index("ix_search_owner_name", "search_index")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("delivered_by")
