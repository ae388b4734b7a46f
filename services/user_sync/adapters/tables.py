"""user_sync's tables (created by ``migrations/versions``), declared without a schema:
the service's engine sets ``search_path`` to its own."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from shared.credentials import opex_credentials_table

__all__ = ["credentials", "provisioning"]

metadata = sa.MetaData()

provisioning = sa.Table(
    "provisioning",
    metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("first_name", sa.String(100)),
    sa.Column("last_name", sa.String(100)),
    sa.Column("step", sa.String(16), nullable=False),
    sa.Column("failed_at_step", sa.String(16)),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("auto_retries", sa.Integer, nullable=False),
    sa.Column("opex_user_id", sa.Uuid),
    sa.Column("adopted", sa.Boolean, nullable=False),
    sa.Column("pending_enc", sa.LargeBinary),
    sa.Column("planned_key_id", sa.String(128)),
    sa.Column("abandoned_key_ids", ARRAY(sa.String(128)), nullable=False),
    sa.Column("wallets", JSONB, nullable=False),
    sa.Column("failure_reason", sa.String(32)),
    sa.Column("last_error_code", sa.String(32)),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_owner", sa.String(100)),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("message_id", sa.Uuid, nullable=False),
    sa.Column("correlation_id", sa.Uuid, nullable=False),
    sa.Column("source_topic", sa.String(249)),
    sa.Column("source_partition", sa.Integer),
    sa.Column("source_offset", sa.BigInteger),
    sa.Column("source_key", sa.LargeBinary),
    sa.Column("source_value", sa.LargeBinary),
    sa.Column("source_headers", JSONB),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("provisioned_at", sa.DateTime(timezone=True)),
    sa.Column("verified_at", sa.DateTime(timezone=True)),
)

credentials = opex_credentials_table(schema=None)
