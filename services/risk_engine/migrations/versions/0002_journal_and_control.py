"""risk_engine: the journal the state is rebuilt from, limits and control requests.

Revision ID: risk_engine_0002
Revises: risk_engine_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "risk_engine_0002"
down_revision = "risk_engine_0001"
branch_labels = None
depends_on = None


def upgrade(schema: str = "") -> None:
    op.create_table(
        "journal",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "last_tickers",  # the newest ticker per symbol: reference prices survive a restart
        sa.Column("symbol", sa.String(32), primary_key=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "limits",
        sa.Column("scope", sa.String(80), primary_key=True),  # "global" or "user:<id>"
        sa.Column("overrides", JSONB, nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    op.create_table(
        "control_requests",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(64), nullable=True),  # None: global
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "control_requests_pending",
        "control_requests",
        ["id"],
        postgresql_where=sa.text("applied_at IS NULL"),
    )


def downgrade(schema: str = "") -> None:
    op.drop_table("control_requests")
    op.drop_table("limits")
    op.drop_table("last_tickers")
    op.drop_table("journal")
