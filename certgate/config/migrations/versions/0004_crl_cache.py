"""CRLs shared by all workers and nodes: one download per distribution point and nextUpdate.

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
    op.create_table(
        "crl_cache",
        sa.Column("url", sa.String(2048), primary_key=True),
        sa.Column("der", sa.LargeBinary, nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_crl_cache_fetched_at", "crl_cache", ["fetched_at"])


def downgrade() -> None:
    op.drop_index("ix_crl_cache_fetched_at", table_name="crl_cache")
    op.drop_table("crl_cache")
