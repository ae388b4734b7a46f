"""Database access shared by every service: one engine per service schema.

Each service owns one PostgreSQL schema. Its engine sets ``search_path`` to that
schema, so tables are declared without a schema and land in the right one, and the
messaging tables (:mod:`shared.db.messaging`) exist once per service.
"""

from shared.db._database import Database, DatabaseSettings, is_transient_db_error
from shared.db._migrations import migrate

__all__ = ["Database", "DatabaseSettings", "is_transient_db_error", "migrate"]
