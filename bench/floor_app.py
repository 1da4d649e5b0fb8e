"""The floor: a bare Starlette app on Threadline's server stack, doing the least work an endpoint can.

Each route parses the same JSON body (orjson), runs ONE statement on SQLite (sqlite3 with Threadline's
pragmas: WAL, synchronous=NORMAL, a commit per write) and returns a body of the same wire shape.
There is no validation, no auth, no thread-existence check and no hop to a worker thread: the SQL
runs inline on the event loop. That makes it a floor, not a competitor.

Run: ``python bench/floor_app.py --port 8100 --db /tmp/floor.db`` (seed first with ``seed()``).
"""

from __future__ import annotations

import argparse
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, tool_resources TEXT, metadata TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY, thread_id TEXT NOT NULL, created_at INTEGER NOT NULL, role TEXT NOT NULL,
    content TEXT NOT NULL, attachments TEXT NOT NULL, metadata TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_messages_thread_id_id ON messages (thread_id, id);
"""
MESSAGE_COLUMNS = "id, thread_id, created_at, role, content, attachments, metadata"


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.executescript(SCHEMA)
    return conn


def _new_id(prefix: str) -> str:
    # Creation-ordered like Threadline's ids (time first), so keyset lists behave the same.
    return f"{prefix}{time.time_ns():020d}{secrets.token_hex(6)}"


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status, media_type="application/json")


def _thread_wire(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "object": "thread",
        "created_at": row[1],
        "tool_resources": orjson.loads(row[2]) if row[2] else None,
        "metadata": orjson.loads(row[3]),
    }


def _message_wire(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "object": "thread.message",
        "created_at": row[2],
        "thread_id": row[1],
        "status": "completed",
        "incomplete_details": None,
        "completed_at": None,
        "incomplete_at": None,
        "role": row[3],
        "content": orjson.loads(row[4]),
        "assistant_id": None,
        "run_id": None,
        "attachments": orjson.loads(row[5]),
        "metadata": orjson.loads(row[6]),
    }


def _text_parts(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"value": content, "annotations": []}}]


def create_app(db_path: Path) -> Starlette:
    conn = connect(db_path)

    async def create_thread(request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        row = (_new_id("thread_"), int(time.time()), None, orjson.dumps(body.get("metadata") or {}).decode())
        conn.execute("INSERT INTO threads VALUES (?, ?, ?, ?)", row)
        conn.commit()
        return _json(_thread_wire(row))

    async def retrieve_thread(request: Request) -> Response:
        thread_id = request.path_params["thread_id"]
        row = conn.execute("SELECT * FROM threads WHERE id = ?", (thread_id,)).fetchone()
        if row is None:
            return _json({"error": {"message": "not found"}}, 404)
        return _json(_thread_wire(row))

    async def create_message(request: Request) -> Response:
        body = orjson.loads(await request.body())
        row = (
            _new_id("msg_"),
            request.path_params["thread_id"],
            int(time.time()),
            body["role"],
            orjson.dumps(_text_parts(body["content"])).decode(),
            "[]",
            orjson.dumps(body.get("metadata") or {}).decode(),
        )
        conn.execute(f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        conn.commit()
        return _json(_message_wire(row))

    async def list_messages(request: Request) -> Response:
        limit = int(request.query_params.get("limit", "20"))
        rows = conn.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? ORDER BY id DESC LIMIT ?",
            (request.path_params["thread_id"], limit + 1),
        ).fetchall()
        data = [_message_wire(row) for row in rows[:limit]]
        return _json(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": len(rows) > limit,
            }
        )

    return Starlette(
        routes=[
            Route("/v1/threads", create_thread, methods=["POST"]),
            Route("/v1/threads/{thread_id}", retrieve_thread, methods=["GET"]),
            Route("/v1/threads/{thread_id}/messages", create_message, methods=["POST"]),
            Route("/v1/threads/{thread_id}/messages", list_messages, methods=["GET"]),
        ]
    )


def seed(db_path: Path, thread_count: int, message_counts: list[int]) -> tuple[list[str], list[str]]:
    """``thread_count`` empty threads, plus one thread per entry of ``message_counts`` holding that many
    messages. Returns (empty thread ids, thread ids in the order of ``message_counts``)."""
    conn = connect(db_path)
    now = int(time.time())
    empty = [_new_id("thread_") for _ in range(thread_count)]
    full = [_new_id("thread_") for _ in message_counts]
    conn.executemany("INSERT INTO threads VALUES (?, ?, NULL, '{}')", [(t, now) for t in empty + full])
    content = orjson.dumps(_text_parts("A seeded message of modest length, as a user might write.")).decode()
    for thread_id, count in zip(full, message_counts, strict=True):
        conn.executemany(
            f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?, ?, ?, 'user', ?, '[]', '{{}}')",
            ((_new_id("msg_"), thread_id, now, content) for _ in range(count)),
        )
    conn.commit()
    conn.close()
    return empty, full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--db", type=Path, required=True)
    args = parser.parse_args()
    # The same uvicorn call as `threadline serve` (loop/http "auto": uvloop + httptools), one process.
    uvicorn.run(
        create_app(args.db),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
