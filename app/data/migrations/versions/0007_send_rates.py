"""send rates: messages per second set on a line or a line group (Messaging Service)

Revision ID: 0007_send_rates
Revises: 0006_users
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_send_rates"
down_revision: str | None = "0006_users"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: NULL means "not set here", so every existing line keeps
    # the default of its kind (OPTGATE_SEND_RATE_*) and no row needs rewriting.
    # Batch mode: SQLite cannot drop a column in place on the way down.
    with op.batch_alter_table("lines") as batch:
        batch.add_column(sa.Column("send_rate", sa.Float(), nullable=True))
    with op.batch_alter_table("line_groups") as batch:
        batch.add_column(sa.Column("send_rate", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("line_groups") as batch:
        batch.drop_column("send_rate")
    with op.batch_alter_table("lines") as batch:
        batch.drop_column("send_rate")
