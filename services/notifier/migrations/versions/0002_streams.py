"""notifier: per-user streams (cursor + events) and the latest state behind the REST
snapshots.

Revision ID: notifier_0002
Revises: notifier_0001
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "notifier_0002"
down_revision = "notifier_0001"
branch_labels = None
depends_on = None


def _updated_at() -> sa.Column[datetime]:
    return sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade(schema: str = "") -> None:
    op.create_table(
        "user_cursor",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("epoch", sa.String(32), nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("floor_seq", sa.BigInteger, nullable=False, server_default="0"),
        _updated_at(),
        sa.CheckConstraint("floor_seq >= 0 AND floor_seq <= last_seq", name="cursor_bounds"),
    )
    op.create_table(
        "user_stream",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("epoch", sa.String(32), nullable=False),
        sa.Column("message_id", sa.Uuid, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("channel", sa.SmallInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("user_stream_message_id", "user_stream", ["message_id"], unique=True)
    op.create_index("user_stream_created_at", "user_stream", ["created_at"])
    op.create_table(
        "orders",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("client_order_id", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(24), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("terminal", sa.Boolean, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        _updated_at(),
        sa.Column("data", JSONB, nullable=False),
    )
    op.create_index("orders_user_seq", "orders", ["user_id", "seq"])
    op.create_table(
        "positions",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(24), primary_key=True),
        sa.Column("quantity", sa.Numeric, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        _updated_at(),
        sa.Column("data", JSONB, nullable=False),
    )
    op.create_table(
        "balances",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("asset", sa.String(10), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        _updated_at(),
        sa.Column("data", JSONB, nullable=False),
    )
    op.create_table(
        "account_state",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        _updated_at(),
        sa.Column("data", JSONB, nullable=False),
    )
    op.create_table(
        "global_state",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("message_id", sa.Uuid, nullable=False),
        _updated_at(),
        sa.Column("data", JSONB, nullable=False),
    )


def downgrade(schema: str = "") -> None:
    for table in (
        "global_state",
        "account_state",
        "balances",
        "positions",
        "orders",
        "user_stream",
        "user_cursor",
    ):
        op.drop_table(table)
