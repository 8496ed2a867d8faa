"""review queue: how a person resolved an inbound text that needed review

Revision ID: 0004_review
Revises: 0003_outbound
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_review"
down_revision: str | None = "0003_outbound"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = "needs_review AND review_outcome IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("review_outcome", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("reviewed_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_messages_review_queue",
        "messages",
        ["organization_id", "id"],
        postgresql_where=sa.text(_PENDING),
        # SQLite uses a partial index only for a query that repeats its filter as written,
        # and SQLAlchemy writes a boolean column there as "= 1".
        sqlite_where=sa.text("needs_review = 1 AND review_outcome IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_review_queue", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("reviewed_at")
        batch.drop_column("reviewed_by")
        batch.drop_column("review_outcome")
