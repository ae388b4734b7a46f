"""notifier: inbox and outbox.

Revision ID: notifier_0001
Revises:
"""

from alembic import op

from shared.messaging import create_messaging_tables

revision = "notifier_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(schema: str = "") -> None:
    create_messaging_tables(op.get_bind())


def downgrade(schema: str = "") -> None:
    op.drop_table("outbox")
    op.drop_table("inbox")
