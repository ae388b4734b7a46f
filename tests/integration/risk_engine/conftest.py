from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from shared.db import migrate

REPO = Path(__file__).resolve().parents[3]
MIGRATIONS = REPO / "services" / "risk_engine" / "migrations" / "versions"


@pytest.fixture
async def risk_schema(database_url: str) -> AsyncIterator[str]:
    """A fresh risk_engine schema with its migrations, dropped afterwards."""
    schema = f"risk_{uuid.uuid4().hex[:10]}"
    migrate(database_url, schema, MIGRATIONS)
    yield schema
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()
