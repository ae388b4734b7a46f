"""notifier: a command's request fingerprint is kept only when it came with an
``Idempotency-Key`` (the only time it is compared), so requests without one skip
rendering and hashing it.

Revision ID: notifier_0004
Revises: notifier_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "notifier_0004"
down_revision = "notifier_0003"
branch_labels = None
depends_on = None


def upgrade(schema: str = "") -> None:
    op.alter_column("commands", "fingerprint", existing_type=sa.String(64), nullable=True)
    op.create_check_constraint(
        "commands_fingerprint_with_key",
        "commands",
        "idempotency_key IS NULL OR fingerprint IS NOT NULL",
    )


def downgrade(schema: str = "") -> None:
    op.drop_constraint("commands_fingerprint_with_key", "commands", type_="check")
    op.execute("UPDATE commands SET fingerprint = '' WHERE fingerprint IS NULL")
    op.alter_column("commands", "fingerprint", existing_type=sa.String(64), nullable=False)
