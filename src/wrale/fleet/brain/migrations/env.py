"""Alembic environment: runs on the connection ``schema.upgrade`` hands over."""

from __future__ import annotations

from alembic import context

from wrale.fleet.brain.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - offline mode is not used
    raise RuntimeError("run migrations through wrale.fleet.brain.schema")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
