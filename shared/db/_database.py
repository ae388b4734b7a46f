from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

DEFAULT_DATABASE_URL = "postgresql+psycopg://opexbridge@127.0.0.1:15432/opexbridge"
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class DatabaseSettings(BaseSettings):
    """``DATABASE_URL`` and pool sizes, from the environment (or ``.env``)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = Field(default=DEFAULT_DATABASE_URL, alias="DATABASE_URL")
    pool_size: int = Field(default=10, alias="DATABASE_POOL_SIZE", ge=1, le=200)

    @property
    def sync_url(self) -> str:
        """The same URL for synchronous drivers (Alembic)."""
        return self.database_url


def validate_schema(schema: str) -> str:
    if not _SCHEMA_RE.fullmatch(schema):
        raise ValueError(f"not a valid schema name: {schema!r}")
    return schema


class Database:
    """An async engine bound to one service schema, and its transactions."""

    def __init__(self, url: str, schema: str, *, pool_size: int = 10) -> None:
        self.schema = validate_schema(schema)
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            connect_args={"options": f"-csearch_path={self.schema}"},
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: DatabaseSettings, schema: str) -> Database:
        return cls(settings.database_url, schema, pool_size=settings.pool_size)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: committed when the block ends, rolled back on any error."""
        async with self._sessions() as session, session.begin():
            yield session

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("select 1"))
        except (OSError, sa_exc.SQLAlchemyError):
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


def is_transient_db_error(error: BaseException) -> bool:
    """True for failures worth retrying: a lost connection, a busy or restarting server,
    a serialization conflict or deadlock. Constraint violations and bugs are not."""
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        sqlstate = getattr(error.orig, "sqlstate", None) or ""
        # 08: connection exception, 40: transaction rollback (serialization, deadlock),
        # 53: insufficient resources, 57P: operator intervention (shutdown, restart).
        return sqlstate.startswith(("08", "40", "53", "57P")) or isinstance(
            error, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    return isinstance(error, sa_exc.TimeoutError | ConnectionError | OSError)
