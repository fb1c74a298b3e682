"""Alembic environment: migrates the engine handed over in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from certgate.config.store import metadata

MIGRATION_LOCK = 0x63657274  # PostgreSQL advisory lock: nodes starting at once migrate one by one

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
