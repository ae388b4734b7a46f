"""The table user_sync writes and the order gateway reads: ``user_sync.opex_credentials``."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, LargeBinary, MetaData, String, Table, Uuid, func

__all__ = ["DEFAULT_SCHEMA", "opex_credentials_table"]

DEFAULT_SCHEMA = "user_sync"


def opex_credentials_table(schema: str | None = DEFAULT_SCHEMA) -> Table:
    """The credentials table in ``schema`` (``None``: the connection's search path, as
    user_sync's own engine has it). One row per platform user:

    ==============  ==================================================================
    user_id         the platform's user id
    opex_user_id    OPEX's uuid of the account (the access token's ``sub``)
    api_key         the API key id (``X-API-KEY``), once created
    secret_enc      the API key's secret, encrypted (`SecretBox`)
    password_enc    the generated OPEX password, encrypted
    key_version     the fingerprint of the key that encrypted both
    ==============  ==================================================================
    """
    return Table(
        "opex_credentials",
        MetaData(schema=schema),
        Column("user_id", String(64), primary_key=True),
        Column("opex_user_id", Uuid, nullable=True),
        Column("api_key", String(128), nullable=True),
        Column("secret_enc", LargeBinary, nullable=True),
        Column("password_enc", LargeBinary, nullable=False),
        Column("key_version", String(32), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
