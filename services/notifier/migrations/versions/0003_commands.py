"""notifier: commands accepted by the trading REST API (idempotency keys, and the orders
placed here that no event has named yet), and OPEX's order id as a look-up key.

Revision ID: notifier_0003
Revises: notifier_0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "notifier_0003"
down_revision = "notifier_0002"
branch_labels = None
depends_on = None


def upgrade(schema: str = "") -> None:
    op.create_table(
        "commands",
        sa.Column("command_id", sa.Uuid, primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=True),
        sa.Column("symbol", sa.String(24), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", JSONB, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index(
        "commands_idempotency_key",
        "commands",
        ["user_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index(
        "commands_placed_order",
        "commands",
        ["user_id", "client_order_id"],
        postgresql_where=sa.text("operation = 'place_order'"),
    )
    op.create_index("commands_created_at", "commands", ["created_at"])
    op.create_index("orders_user_order_id", "orders", ["user_id", sa.text("(data->>'order_id')")])


def downgrade(schema: str = "") -> None:
    op.drop_index("orders_user_order_id", table_name="orders")
    op.drop_table("commands")
