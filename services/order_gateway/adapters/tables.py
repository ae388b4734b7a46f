"""Tables of the ``order_gateway`` schema (see migrations/versions)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, MetaData, String, Table, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("client_order_id", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("opex_order_id", String(64), nullable=True),
    Column("status", String(24), nullable=False),
    Column("is_open", Boolean, nullable=False),
    Column("state", JSONB, nullable=False),
    Column("correlation_id", Uuid, nullable=True),
    Column("causation_id", Uuid, nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
"""One row per order the gateway holds: the indexed columns, and the whole
`GatewayOrder` in ``state`` (`adapters.store.to_state` / `from_state`)."""
