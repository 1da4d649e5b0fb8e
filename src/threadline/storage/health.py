"""Readiness: can this process serve requests from its database right now?"""

from __future__ import annotations

import functools
import os

import sqlalchemy as sa

from threadline.storage.database import Database
from threadline.storage.migrate import current_revision, head_revision


@functools.cache
def _head() -> str | None:
    return head_revision()


def not_ready_reason(db: Database) -> str | None:
    """None when the database answers and its schema is at the code's head; else why not (one line).
    Blocking: call it off the event loop."""
    url = db.engine.url
    # An open SQLite connection keeps answering from a deleted file: check the file itself.
    on_disk = db.dialect == "sqlite" and url.database and url.database != ":memory:"
    if on_disk and not os.path.exists(str(url.database)):
        return f"database file {url.database} is missing"
    try:
        with db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        current = current_revision(db.engine)
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"database unreachable: {first_line}"
    head = _head()
    if current != head:
        at = current or "no revision"
        return f"database schema is at {at}, this server needs {head}: run threadline migrate"
    return None
