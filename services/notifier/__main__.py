"""``python -m services.notifier``: apply the notifier's migrations, then serve the app
with uvicorn on ``NOTIFIER_HOST:NOTIFIER_PORT`` (127.0.0.1:8000)."""

from __future__ import annotations

import resource
from pathlib import Path

import uvicorn

from services.notifier.adapters.server import uvicorn_config
from services.notifier.app import create_app
from services.notifier.config import NotifierSettings
from shared.db import DatabaseSettings, migrate
from shared.observability import configure_logging
from shared.observability.tracing import configure_tracing

MIGRATIONS = Path(__file__).with_name("migrations") / "versions"


def raise_file_limit() -> int:
    """Lift the soft open-files limit to the hard one (one descriptor per client)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def main() -> None:
    configure_logging("notifier")
    configure_tracing("notifier")
    settings = NotifierSettings()
    database = DatabaseSettings()
    raise_file_limit()
    if settings.migrate_on_start:
        migrate(database.database_url, settings.schema_name, MIGRATIONS)
    app = create_app(settings, database_url=database.database_url)
    uvicorn.Server(uvicorn_config(app, settings)).run()


if __name__ == "__main__":
    main()
