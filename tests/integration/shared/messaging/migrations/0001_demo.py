"""demo service for the messaging tests: inbox, outbox and an effects table.

Revision ID: demo_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from shared.messaging import create_messaging_tables

revision = "demo_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(schema: str = "") -> None:
    create_messaging_tables(op.get_bind())
    # No unique constraint on purpose: a message handled twice shows up as two rows.
    op.create_table(
        "effects",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.Uuid, nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
    )


def downgrade(schema: str = "") -> None:
    op.drop_table("effects")
