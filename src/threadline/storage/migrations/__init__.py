"""Alembic migrations, applied by ``threadline migrate`` and on ``threadline serve`` start."""
