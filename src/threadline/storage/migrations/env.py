"""Alembic environment: runs on the connection handed in by ``storage.migrate.upgrade``."""

from __future__ import annotations

from alembic import context

from threadline.storage.tables import metadata


def _run() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


# Alembic executes this file by path (as module ``env_py``) while it migrates; an ordinary import of
# the package module (a package walk, a docs tool) has no migration context and must do nothing.
if __name__ != "threadline.storage.migrations.env":
    _run()
