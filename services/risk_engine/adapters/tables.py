"""Tables of the ``risk_engine`` schema (see migrations/versions)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, LargeBinary, MetaData, String, Table
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

journal = Table(
    "journal",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("user_id", String(64)),
    Column("at_ms", BigInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)

last_tickers = Table(
    "last_tickers",
    metadata,
    Column("symbol", String(32), primary_key=True),
    Column("payload", LargeBinary, nullable=False),
)

limits = Table(
    "limits",
    metadata,
    Column("scope", String(80), primary_key=True),
    Column("overrides", JSONB, nullable=False),
    Column("updated_by", String(100), nullable=False),
    Column("updated_at", DateTime(timezone=True)),
)

control_requests = Table(
    "control_requests",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("user_id", String(64)),
    Column("state", String(16), nullable=False),
    Column("requested_by", String(100), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("requested_at", DateTime(timezone=True)),
    Column("applied_at", DateTime(timezone=True)),
)
