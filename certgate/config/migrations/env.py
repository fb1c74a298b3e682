"""Alembic environment: migrates the engine handed over in `config.attributes`."""

from __future__ import annotations

from alembic import context

from certgate.config.store import metadata

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
