"""Alembic environment: always handed an open connection by `storage.migrate` (no URL of its own)."""

from __future__ import annotations

from alembic import context

from agent_portal.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
