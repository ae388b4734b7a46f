"""user_sync: the provisioning state machine and the encrypted OPEX credentials.

Revision ID: user_sync_0002
Revises: user_sync_0001
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "user_sync_0002"
down_revision = "user_sync_0001"
branch_labels = None
depends_on = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=None if nullable else sa.func.now(),
    )


def upgrade(schema: str = "") -> None:
    op.create_table(
        "provisioning",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("first_name", sa.String(100), nullable=True),
        sa.Column("last_name", sa.String(100), nullable=True),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("failed_at_step", sa.String(16), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("auto_retries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("opex_user_id", sa.Uuid, nullable=True),
        sa.Column("adopted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("pending_enc", sa.LargeBinary, nullable=True),
        sa.Column("planned_key_id", sa.String(128), nullable=True),
        sa.Column(
            "abandoned_key_ids",
            ARRAY(sa.String(128)),
            nullable=False,
            server_default=sa.text("'{}'"),
        ),
        sa.Column("wallets", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("failure_reason", sa.String(32), nullable=True),
        sa.Column("last_error_code", sa.String(32), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        _ts("next_attempt_at"),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        _ts("lease_until", nullable=True),
        sa.Column("revision", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("message_id", sa.Uuid, nullable=False),
        sa.Column("correlation_id", sa.Uuid, nullable=False),
        sa.Column("source_topic", sa.String(249), nullable=True),
        sa.Column("source_partition", sa.Integer, nullable=True),
        sa.Column("source_offset", sa.BigInteger, nullable=True),
        sa.Column("source_key", sa.LargeBinary, nullable=True),
        sa.Column("source_value", sa.LargeBinary, nullable=True),
        sa.Column("source_headers", JSONB, nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("provisioned_at", nullable=True),
        _ts("verified_at", nullable=True),
    )
    # one platform user per OPEX username (OPEX compares usernames case-insensitively)
    op.create_index("provisioning_email", "provisioning", [sa.text("lower(email)")], unique=True)
    op.create_index(
        "provisioning_due",
        "provisioning",
        ["next_attempt_at"],
        postgresql_where=sa.text("step NOT IN ('PROVISIONED', 'FAILED')"),
    )
    op.create_index("provisioning_step", "provisioning", ["step"])
    op.create_table(
        "opex_credentials",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("opex_user_id", sa.Uuid, nullable=True),
        sa.Column("api_key", sa.String(128), nullable=True),
        sa.Column("secret_enc", sa.LargeBinary, nullable=True),
        sa.Column("password_enc", sa.LargeBinary, nullable=False),
        sa.Column("key_version", sa.String(32), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
    )


def downgrade(schema: str = "") -> None:
    op.drop_table("opex_credentials")
    op.drop_table("provisioning")
