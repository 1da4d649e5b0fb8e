"""Keyset pagination shared by every list: ``after``/``before`` compare ids, which sort by creation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.threads import ListParams, Page

T = TypeVar("T")


def fetch_page(
    conn: Connection,
    table: sa.Table,
    where: Sequence[sa.ColumnElement[bool]],
    params: ListParams,
    to_object: Callable[[Any], T],
) -> Page[T]:
    """One page in ``params.order``. ``after`` = items past the cursor in list order;
    ``before`` = the items just ahead of it, and ``has_more`` then tells whether more lie further back.
    Fetches ``limit + 1`` rows to learn ``has_more`` without a count."""
    id_col = table.c.id
    conditions = list(where)
    descending = params.order == "desc"
    if params.after is not None:
        conditions.append(id_col < params.after if descending else id_col > params.after)
    if params.before is not None:
        conditions.append(id_col > params.before if descending else id_col < params.before)
    # Walking backwards from `before` (without `after`) reads the nearest items first, then flips them.
    backwards = params.before is not None and params.after is None
    ascending_scan = descending == backwards
    query = (
        sa.select(table)
        .where(*conditions)
        .order_by(id_col.asc() if ascending_scan else id_col.desc())
        .limit(params.limit + 1)
    )
    rows = conn.execute(query).all()
    has_more = len(rows) > params.limit
    rows = list(rows[: params.limit])
    if backwards:
        rows.reverse()
    return Page([to_object(row) for row in rows], has_more)
