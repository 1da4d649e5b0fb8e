"""The databases the suite runs on: SQLite always, PostgreSQL when one answers.

PostgreSQL is used when THREADLINE_TEST_POSTGRES_URL is set, or the local server at 127.0.0.1:5432
(trust auth, as on the development and CI machines) answers. Each server under test gets a fresh
database, dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from functools import cache

import psycopg
from psycopg import sql

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get("THREADLINE_TEST_POSTGRES_URL") or DEFAULT_ADMIN_URL


@cache
def postgres_unavailable_reason() -> str | None:
    try:
        with psycopg.connect(admin_url(), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {admin_url()}: {exc}".strip()


def create_database() -> str:
    """A fresh empty database; returns its URL."""
    name = f"threadline_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = admin_url().rpartition("/")
    return f"{base}/{name}"


def drop_database(url: str) -> None:
    name = url.rpartition("/")[2]
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@cache
def pgvector_unavailable_reason() -> str | None:
    """Why PostgreSQL's vector tests cannot run here (no server, or no pgvector on it), else None."""
    reason = postgres_unavailable_reason()
    if reason is not None:
        return reason
    with psycopg.connect(admin_url(), connect_timeout=3) as conn:
        found = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    return None if found else "the pgvector extension is not installed on this PostgreSQL server"
