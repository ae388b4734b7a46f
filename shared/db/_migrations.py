from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from shared.db._database import validate_schema

_SCRIPT_LOCATION = Path(__file__).with_name("alembic")


def migrate(url: str, schema: str, versions_dir: Path | str, revision: str = "head") -> None:
    """Create ``schema`` if missing and upgrade it to ``revision`` with the migrations in
    ``versions_dir``. Each service keeps its own versions folder and version table."""
    validate_schema(schema)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPT_LOCATION))
    cfg.set_main_option("version_locations", str(Path(versions_dir).resolve()))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["url"] = url
    cfg.attributes["schema"] = schema
    command.upgrade(cfg, revision)
