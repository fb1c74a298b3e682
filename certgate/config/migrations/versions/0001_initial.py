"""Initial schema: resources, refs and the revision counter.

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
        "resources",
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("parent", sa.String(1024), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("properties", sa.Text, nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=True),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_resources_kind", "resources", ["kind"])
    op.create_index("ix_resources_parent", "resources", ["parent"])
    op.create_table(
        "refs",
        sa.Column("from_path", sa.String(1024), primary_key=True),
        sa.Column("to_path", sa.String(1024), primary_key=True),
    )
    op.create_index("ix_refs_to_path", "refs", ["to_path"])
    revision_table = op.create_table(
        "revision",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )
    op.bulk_insert(revision_table, [{"id": 1, "value": 0}])


def downgrade() -> None:
    op.drop_table("revision")
    op.drop_table("refs")
    op.drop_table("resources")
