"""order_gateway: the orders table.

Revision ID: order_gateway_0002
Revises: order_gateway_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "order_gateway_0002"
down_revision = "order_gateway_0001"
branch_labels = None
depends_on = None


def upgrade(schema: str = "") -> None:
    op.create_table(
        "orders",
        sa.Column("client_order_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("opex_order_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("is_open", sa.Boolean, nullable=False),
        sa.Column("state", JSONB, nullable=False),
        sa.Column("correlation_id", sa.Uuid, nullable=True),
        sa.Column("causation_id", sa.Uuid, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("orders_open_by_user", "orders", ["user_id"], postgresql_where="is_open")
    op.create_index(
        "orders_by_opex_id",
        "orders",
        ["opex_order_id"],
        unique=True,
        postgresql_where="opex_order_id IS NOT NULL",
    )
    op.create_index("orders_by_created", "orders", ["created_at_ms"])


def downgrade(schema: str = "") -> None:
    op.drop_table("orders")
