from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from shared.db import Database, migrate

MIGRATIONS = Path(__file__).with_name("migrations")


@pytest.fixture
async def demo_db(database_url: str) -> AsyncIterator[Database]:
    """A fresh schema with the demo migrations applied, dropped afterwards."""
    schema = f"demo_{uuid.uuid4().hex[:10]}"
    migrate(database_url, schema, MIGRATIONS)
    db = Database(database_url, schema, pool_size=4)
    try:
        yield db
    finally:
        async with db.transaction() as session:
            await session.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await db.dispose()
