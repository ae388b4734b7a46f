"""Every service's migrations apply to a fresh schema, twice without change."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, inspect, text

from opexbridge.registry import ServiceInfo, with_migrations
from shared.db import migrate

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("service", with_migrations(), ids=lambda s: s.name)
def test_migrate_when_run_twice_on_a_fresh_schema_then_inbox_and_outbox_exist(
    database_url: str, service: ServiceInfo
) -> None:
    versions = service.migrations
    schema = f"mig_{uuid.uuid4().hex[:10]}"
    engine = create_engine(database_url)
    try:
        migrate(database_url, schema, versions)
        migrate(database_url, schema, versions)
        tables = set(inspect(engine).get_table_names(schema=schema))
        assert {"inbox", "outbox", "alembic_version"} <= tables
        with engine.connect() as conn:
            heads = conn.execute(text(f'select version_num from "{schema}".alembic_version')).all()
        assert len(heads) == 1
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
