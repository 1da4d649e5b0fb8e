"""Keyset pagination shared by every list: ``after``/``before`` compare ids, which sort by creation."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.threads import ListParams, Page
from threadline.storage.compiled import Compiled
from threadline.storage.rows import Mapper, object_columns

T = TypeVar("T")


def fetch_page(
    conn: Connection,
    table: sa.Table,
    where: Sequence[sa.ColumnElement[bool]],
    params: ListParams,
    to_object: Callable[[Any], T],
    *,
    equal: Mapping[str, Any] | None = None,
    columns: Sequence[sa.Column[Any]] | None = None,
) -> Page[T]:
    """One page in ``params.order``. ``after`` = items past the cursor in list order;
    ``before`` = the items just ahead of it, and ``has_more`` then tells whether more lie further back.
    Fetches ``limit + 1`` rows to learn ``has_more`` without a count.

    Filters: ``equal`` (column name -> value, the hot lists: a thread's messages and runs, a run's
    steps) uses a statement built once per shape; ``where`` (any other expression) builds one per call.
    ``columns``: what to select (a table is always listed with the same ones), by default the object's."""
    selected = None if columns is None else tuple(column.name for column in columns)
    values, shape = _values_and_shape(table, params, equal, selected)
    query = None if where else _STATEMENTS.get(shape)
    if query is None:
        query = _page_query(table, where, shape, object_columns(table) if columns is None else columns)
        if not where:
            _STATEMENTS[shape] = query
    return _page(params, conn.execute(query, values).all(), to_object)


def keyset_page(
    conn: Connection, params: ListParams, mapper: Mapper[T], *, equal: Mapping[str, Any]
) -> Page[T]:
    """``fetch_page`` for the hot lists (a thread's messages and runs, a run's steps, a project's
    threads and assistants): equality filters only, the object's columns, and the statement compiled
    once per shape and run on the driver's cursor (storage/compiled.py)."""
    values, shape = _values_and_shape(mapper.table, params, equal, None)
    query = _COMPILED.get(shape)
    if query is None:
        query = _COMPILED[shape] = Compiled(_page_query(mapper.table, [], shape, mapper.columns))
    return _page(params, query.all(conn, values), mapper.load_values)


def _values_and_shape(
    table: sa.Table, params: ListParams, equal: Mapping[str, Any] | None, selected: tuple[str, ...] | None
) -> tuple[dict[str, Any], tuple[Any, ...]]:
    values: dict[str, Any] = {f"b_{name}": value for name, value in (equal or {}).items()}
    values["b_limit"] = params.limit + 1
    if params.after is not None:
        values["b_after"] = params.after
    if params.before is not None:
        values["b_before"] = params.before
    shape = (
        table.name,
        tuple(equal or ()),
        params.order == "desc",
        params.after is not None,
        params.before is not None,
        selected,
    )
    return values, shape


def _page(params: ListParams, fetched: Sequence[Any], to_object: Callable[[Any], T]) -> Page[T]:
    has_more = len(fetched) > params.limit
    rows = list(fetched[: params.limit])
    # Walking backwards from `before` (without `after`) reads the nearest items first, then flips them.
    if params.before is not None and params.after is None:
        rows.reverse()
    return Page([to_object(row) for row in rows], has_more)


# Page statements by shape (table, equality columns, order, which cursors): a handful per process.
_STATEMENTS: dict[tuple[Any, ...], sa.Select[Any]] = {}
_COMPILED: dict[tuple[Any, ...], Compiled] = {}


def _page_query(
    table: sa.Table,
    where: Sequence[sa.ColumnElement[bool]],
    shape: tuple[Any, ...],
    columns: Sequence[sa.Column[Any]],
) -> sa.Select[Any]:
    _, names, descending, has_after, has_before, _ = shape
    id_col = table.c.id
    conditions = [*where, *(table.c[name] == sa.bindparam(f"b_{name}") for name in names)]
    after: sa.BindParameter[Any] = sa.bindparam("b_after")
    before: sa.BindParameter[Any] = sa.bindparam("b_before")
    if has_after:
        conditions.append(id_col < after if descending else id_col > after)
    if has_before:
        conditions.append(id_col > before if descending else id_col < before)
    backwards = has_before and not has_after
    ascending_scan = descending == backwards
    return (
        sa.select(*columns)
        .where(*conditions)
        .order_by(id_col.asc() if ascending_scan else id_col.desc())
        .limit(sa.bindparam("b_limit"))
    )
