"""Statements compiled once per dialect and run on the driver's own cursor: the hot paths' SQL.

Everywhere else in storage/, SQLAlchemy Core builds and executes the statements. Its execution layer
costs ~25-100 µs of Python per statement (an execution context, the cache lookup, parameter
processing, a ``Result`` and its rows), several times what SQLite takes to run a point read or an
insert (~5-10 µs), and the core requests run one to four statements. For the statements that every
request or run step executes, ``Compiled`` keeps the Core definition (one source for table and column
names), compiles it once per dialect with SQLAlchemy's own compiler, and executes the SQL text on the
DB-API cursor of the transaction's connection:

- same connection, so same transaction: SQLAlchemy still begins, commits and rolls back;
- values go through the same type processors SQLAlchemy would apply (JSON serialised by the engine's
  serializer, a run status stored as its text), and results come back through the result processors,
  so a row loads exactly as it did through ``Connection.execute``;
- a driver error is raised as SQLAlchemy's wrapper (``IntegrityError``, ``DataError``, …) with the
  driver's exception as ``orig``, which is what the callers catch.

A statement whose shape varies per call (a list filtered by arbitrary metadata) stays on Core.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

Processor = Callable[[Any], Any]


@dataclass(slots=True)
class _Form:
    """One statement as one dialect runs it."""

    sql: str
    # Positional drivers (SQLite's qmark) take a tuple in this order; named ones (psycopg's pyformat)
    # take the dict, and ``order`` is None.
    order: tuple[str, ...] | None
    constants: Mapping[str, Any]  # values written in the statement itself (``status = 'queued'``)
    binds: Mapping[str, Processor]  # per bind name, where the type converts the value
    columns: tuple[Any, ...]  # a SELECT's result columns (none for a write)
    error: type[Exception]  # the driver's base exception
    # Per result column index, where the type converts the value: set from the first result's
    # description, since a processor may depend on the type the driver reports (PostgreSQL's numerics).
    results: tuple[tuple[int, Processor], ...] | None = None


class Compiled:
    """A Core statement run on the DB-API cursor (see the module's docstring). ``column_keys``: the
    columns an INSERT or an UPDATE without ``.values()`` sets, as SQLAlchemy's compiler takes them;
    the values are passed under those names."""

    def __init__(self, statement: sa.ClauseElement, *, column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.column_keys = None if column_keys is None else list(column_keys)
        self._forms: dict[str, _Form] = {}

    def _form(self, dialect: Dialect) -> _Form:
        form = self._forms.get(dialect.name)
        if form is None:
            form = self._forms[dialect.name] = self._compile(dialect)
        return form

    def _compile(self, dialect: Dialect) -> _Form:
        compiled: Any = self.statement.compile(
            dialect=dialect, column_keys=self.column_keys, compile_kwargs={"render_postcompile": True}
        )
        constants: dict[str, Any] = {}
        binds: dict[str, Processor] = {}
        for bind, name in compiled.bind_names.items():
            if not bind.required:
                constants[name] = bind.effective_value
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                binds[name] = processor
        return _Form(
            sql=compiled.string,
            order=tuple(compiled.positiontup) if compiled.positional else None,
            constants=constants,
            binds=binds,
            columns=tuple(getattr(self.statement, "selected_columns", ())),
            error=dialect.loaded_dbapi.Error,
        )

    def _results(self, form: _Form, cursor: Any, dialect: Dialect) -> tuple[tuple[int, Processor], ...]:
        if form.results is None:
            results: list[tuple[int, Processor]] = []
            for index, (column, described) in enumerate(zip(form.columns, cursor.description, strict=True)):
                processor = column.type.dialect_impl(dialect).result_processor(dialect, described[1])
                if processor is not None:
                    results.append((index, processor))
            form.results = tuple(results)
        return form.results

    def _parameters(self, form: _Form, values: Mapping[str, Any]) -> Any:
        merged = {**form.constants, **values} if form.constants else dict(values)
        for name, processor in form.binds.items():
            merged[name] = processor(merged[name])
        if form.order is None:
            return merged
        return tuple([merged[name] for name in form.order])

    def _run(self, conn: Connection, values: Mapping[str, Any]) -> tuple[_Form, Any]:
        form = self._form(conn.dialect)
        parameters = self._parameters(form, values)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(form.sql, parameters)
        except form.error as exc:
            cursor.close()
            raise _wrapped(form, parameters, exc, conn.dialect) from exc
        return form, cursor

    def _load(self, results: tuple[tuple[int, Processor], ...], row: Sequence[Any]) -> Sequence[Any]:
        if not results:
            return row
        values = list(row)
        for index, processor in results:
            values[index] = processor(values[index])
        return values

    def first(self, conn: Connection, values: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row (the statement should select at most one), or None."""
        form, cursor = self._run(conn, values)
        try:
            row = cursor.fetchone()
            return None if row is None else self._load(self._results(form, cursor, conn.dialect), row)
        finally:
            cursor.close()

    def all(self, conn: Connection, values: Mapping[str, Any]) -> list[Sequence[Any]]:
        form, cursor = self._run(conn, values)
        try:
            rows = cursor.fetchall()
            results = self._results(form, cursor, conn.dialect)
        finally:
            cursor.close()
        if not results:
            return list(rows)
        return [self._load(results, row) for row in rows]

    def scalar(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = self.first(conn, values)
        return None if row is None else row[0]

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """Run a write; returns the number of rows it touched."""
        _, cursor = self._run(conn, values)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def execute_many(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run a write once per set of values (inserting several rows)."""
        form = self._form(conn.dialect)
        parameters = [self._parameters(form, values) for values in rows]
        if not parameters:
            return
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(form.sql, parameters)
        except form.error as exc:
            raise _wrapped(form, parameters, exc, conn.dialect) from exc
        finally:
            cursor.close()


def _wrapped(form: _Form, parameters: Any, exc: Exception, dialect: Dialect) -> Exception:
    """The driver's error as SQLAlchemy raises it from ``Connection.execute``."""
    return sa.exc.DBAPIError.instance(
        form.sql, parameters, exc, form.error, hide_parameters=True, dialect=dialect
    )
