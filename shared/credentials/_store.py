"""`CredentialStore`: the order gateway's read of a user's OPEX API key."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.credentials._box import SecretBox
from shared.credentials._table import DEFAULT_SCHEMA, opex_credentials_table
from shared.db import Database
from shared.opex import ApiKey

__all__ = ["CredentialStore", "OpexCredentials"]


@dataclass(frozen=True, slots=True)
class OpexCredentials:
    """What a service needs to act on OPEX for a platform user: the OPEX account's uuid
    and its API key (``api_key.secret`` is a ``SecretStr``; the repr masks it)."""

    user_id: str
    opex_user_id: UUID
    api_key: ApiKey = field(repr=False)
    key_version: str

    def __repr__(self) -> str:
        return (
            f"OpexCredentials(user_id={self.user_id!r}, opex_user_id={self.opex_user_id}, "
            f"api_key={self.api_key!r}, key_version={self.key_version!r})"
        )


class CredentialStore:
    """Reads ``<schema>.opex_credentials`` (written by user_sync) and decrypts the API key.

    ::

        store = CredentialStore(db, SecretBox.from_settings())
        creds = await store.get("42")        # OpexCredentials, or None (not provisioned)
        await opex.place_order(creds.api_key, ...)

    ``db`` may be any service's `Database` (the table name is schema-qualified); its
    database role needs ``SELECT`` on the table. Answers are cached for ``cache_s``
    seconds (0: never); call `invalidate` after OPEX refused a key, so the next `get`
    reads the row again (user_sync replaces a key OPEX stops accepting).
    """

    def __init__(
        self,
        db: Database | AsyncEngine,
        box: SecretBox,
        *,
        schema: str = DEFAULT_SCHEMA,
        cache_s: float = 30.0,
    ) -> None:
        self._engine = db.engine if isinstance(db, Database) else db
        self._box = box
        self._table = opex_credentials_table(schema)
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, OpexCredentials | None]] = {}

    async def get(self, user_id: str) -> OpexCredentials | None:
        """The user's OPEX credentials, or ``None`` while no API key is stored.
        `shared.credentials.SecretUnreadable` if the secret cannot be decrypted."""
        if self._cache_s > 0:
            hit = self._cache.get(user_id)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        t = self._table
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(t.c.opex_user_id, t.c.api_key, t.c.secret_enc, t.c.key_version).where(
                        t.c.user_id == user_id
                    )
                )
            ).first()
        creds: OpexCredentials | None = None
        if row is not None and row.api_key and row.secret_enc is not None and row.opex_user_id:
            creds = OpexCredentials(
                user_id=user_id,
                opex_user_id=row.opex_user_id,
                api_key=ApiKey(row.api_key, self._box.decrypt(row.secret_enc)),
                key_version=row.key_version,
            )
        if self._cache_s > 0:
            self._cache[user_id] = (time.monotonic() + self._cache_s, creds)
        return creds

    def invalidate(self, user_id: str | None = None) -> None:
        """Forget the cached answer for ``user_id`` (or every user)."""
        if user_id is None:
            self._cache.clear()
        else:
            self._cache.pop(user_id, None)
