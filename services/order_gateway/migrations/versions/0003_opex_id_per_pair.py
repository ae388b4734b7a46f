"""order_gateway: an OPEX order id is unique per user and pair, not globally.

OPEX (and the sandbox) number orders per pair, so two pairs can both have an order 5.

Revision ID: order_gateway_0003
Revises: order_gateway_0002
"""

from alembic import op

revision = "order_gateway_0003"
down_revision = "order_gateway_0002"
branch_labels = None
depends_on = None


def upgrade(schema: str = "") -> None:
    op.drop_index("orders_by_opex_id", table_name="orders")
    op.execute(
        "CREATE UNIQUE INDEX orders_by_opex_id ON orders "
        "(user_id, (state->>'symbol'), opex_order_id) WHERE opex_order_id IS NOT NULL"
    )


def downgrade(schema: str = "") -> None:
    op.drop_index("orders_by_opex_id", table_name="orders")
    op.create_index(
        "orders_by_opex_id",
        "orders",
        ["opex_order_id"],
        unique=True,
        postgresql_where="opex_order_id IS NOT NULL",
    )
