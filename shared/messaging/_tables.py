"""The inbox and outbox tables, created in each service's own schema."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

metadata = MetaData()

inbox_table = Table(
    "inbox",
    metadata,
    Column("consumer", String(100), primary_key=True),
    Column("message_id", Uuid, primary_key=True),
    Column("topic", String(249), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox_table = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("message_id", Uuid, nullable=False, unique=True),
    Column("topic", String(249), nullable=False),
    Column("key", LargeBinary, nullable=True),
    Column("payload", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

Index("inbox_processed_at", inbox_table.c.processed_at)


def create_messaging_tables(bind: Connection) -> None:
    """Create the inbox and outbox in the connection's current schema (for migrations)."""
    metadata.create_all(bind)


# Bulk statements: one round trip and one cached statement per batch, whatever its size.
# Rows travel as one JSON document (orjson.dumps; psycopg's text arrays escape each
# element with a regex, and SQLAlchemy's multi-VALUES inserts compile anew per size).
# Payloads and keys are UTF-8 (encoded envelopes, user ids, symbols).
INBOX_CLAIM = text(
    """
    INSERT INTO inbox (consumer, message_id, topic, partition, "offset")
    SELECT consumer, message_id, topic, partition, "offset"
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
        AS x(consumer text, message_id uuid, topic text, partition int, "offset" bigint)
    ON CONFLICT DO NOTHING
    RETURNING message_id
    """
)

OUTBOX_STAGE = text(
    """
    INSERT INTO outbox (message_id, topic, key, payload, headers)
    SELECT message_id, topic, convert_to(key, 'UTF8'), convert_to(payload, 'UTF8'), headers
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
        AS x(n int, message_id uuid, topic text, key text, payload text, headers jsonb)
    ORDER BY n
    """
)

OUTBOX_DELETE = text("DELETE FROM outbox WHERE id = ANY(CAST(:ids AS bigint[]))")
