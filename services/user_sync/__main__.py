"""``python -m services.user_sync`` (``make user-sync``): apply user_sync's migrations,
then run it under uvicorn on ``USER_SYNC_HOST:USER_SYNC_PORT`` (127.0.0.1:8091, serving
``/health`` and ``/metrics``); SIGTERM or Ctrl-C stops it cleanly."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from services.user_sync.app import create_app
from services.user_sync.config import SERVICE, UserSyncSettings
from shared.db import DatabaseSettings, migrate
from shared.observability import configure_logging
from shared.observability.tracing import configure_tracing

MIGRATIONS = Path(__file__).with_name("migrations") / "versions"


def main() -> None:
    configure_logging(SERVICE)
    configure_tracing(SERVICE)
    settings = UserSyncSettings()
    database = DatabaseSettings()
    if settings.migrate_on_start:
        migrate(database.database_url, settings.schema_name, MIGRATIONS)
    app = create_app(settings, database_url=database.database_url)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            lifespan="on",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=5,
        )
    )
    server.run()


if __name__ == "__main__":
    main()
