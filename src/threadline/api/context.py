"""What a request handler reaches through the app: the database, settings and admission bounds
(set by ``app.py``)."""

from __future__ import annotations

from starlette.requests import Request

from threadline.api.admission import Admission
from threadline.config import Settings
from threadline.storage.database import Database


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


def admission(request: Request) -> Admission:
    value: Admission = request.app.state.admission
    return value
