"""Alembic environment shared by every service; see shared.db.migrate."""

from alembic import context
from sqlalchemy import create_engine, text

config = context.config
url: str = config.attributes["url"]
schema: str = config.attributes["schema"]

engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
with engine.connect() as connection:
    connection.execute(text(f'SET search_path TO "{schema}"'))
    context.configure(
        connection=connection,
        version_table_schema=schema,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations(schema=schema)
    connection.commit()
engine.dispose()
