"""Persistence: one dialect-neutral schema (SQLAlchemy Core) on SQLite or PostgreSQL.

The only package that imports SQLAlchemy or a database driver. Driver errors become domain errors here.
"""
