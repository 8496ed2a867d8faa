"""line moves and held texts: each line's group over time, moves seen at the provider,
texts to numbers no organisation has

Revision ID: 0005_line_moves
Revises: 0004_review
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_line_moves"
down_revision: str | None = "0004_review"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("lines") as batch:
        batch.add_column(sa.Column("seen_group", sa.String(length=100), nullable=True))
    op.create_table(
        "line_memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("carried", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["line_groups.id"],
            name=op.f("fk_line_memberships_group_id_line_groups"),
        ),
        sa.ForeignKeyConstraint(
            ["line_id"], ["lines.id"], name=op.f("fk_line_memberships_line_id_lines")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_line_memberships")),
    )
    op.create_index(
        op.f("ix_line_memberships_line_id"), "line_memberships", ["line_id"], unique=False
    )
    # Every line's group as it is now: the first row of its membership history.
    op.execute(
        "INSERT INTO line_memberships (line_id, group_id, actor, reason, carried, created_at) "
        "SELECT id, group_id, 'optgate db upgrade', "
        "'its group when optgate began recording moves', 0, created_at FROM lines"
    )
    op.create_table(
        "held_texts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("provider_message_id", sa.String(length=64), nullable=False),
        sa.Column("line", sa.String(length=32), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("service_id", sa.String(length=100), nullable=True),
        sa.Column("provider_action", sa.String(length=16), nullable=True),
        sa.Column("media_count", sa.Integer(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_held_texts")),
        sa.UniqueConstraint(
            "provider",
            "provider_message_id",
            name=op.f("uq_held_texts_provider_provider_message_id"),
        ),
    )
    op.create_index(op.f("ix_held_texts_line"), "held_texts", ["line"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_held_texts_line"), table_name="held_texts")
    op.drop_table("held_texts")
    op.drop_index(op.f("ix_line_memberships_line_id"), table_name="line_memberships")
    op.drop_table("line_memberships")
    with op.batch_alter_table("lines") as batch:
        batch.drop_column("seen_group")
