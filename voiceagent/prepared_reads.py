"""Model instances from SQL written once per process, for the few reads on every request's path.

The ORM builds a query's SQL, and ``raw()`` its column mapping, on every call: 1 ms of a 2.2 ms
``GET /voice/sessions/{id}`` (issue 10). A :class:`PreparedRead` does that work once: the SQL, the
fields it selects and each column's converters (the ORM's own, so values come back exactly as the
ORM gives them), then each call is one ``execute`` and ``Model.from_db`` per row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections
from django.db.models import Model


class PreparedRead:
    """Rows of ``model``: its concrete fields first, in order, then ``extra`` columns set as attributes.

    ``build_sql(quote)`` writes the statement, given the connection's quoting function; values are
    passed as ``%s`` parameters, never formatted in.
    """

    def __init__(
        self, model: type[Model], build_sql: Callable[[Callable[[str], str]], str], *, extra: Sequence[str] = ()
    ) -> None:
        self.model = model
        self.build_sql = build_sql
        self.extra = tuple(extra)
        self._prepared: dict[str, tuple[str, list[str], list[tuple[int, Any, list]]]] = {}

    def _prepare(self, connection) -> tuple[str, list[str], list[tuple[int, Any, list]]]:
        fields = self.model._meta.concrete_fields
        converters = column_converters(self.model, fields, connection)
        return self.build_sql(connection.ops.quote_name), [field.attname for field in fields], converters

    def __call__(self, params: Sequence[Any], *, using: str = "default") -> list[Model]:
        connection = connections[using]
        prepared = self._prepared.get(connection.vendor)
        if prepared is None:
            prepared = self._prepared[connection.vendor] = self._prepare(connection)
        sql, attnames, converters = prepared
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        width = len(attnames)
        instances = []
        for row in rows:
            values = converted(row[:width], converters, connection)
            instance = self.model.from_db(using, attnames, values)
            for name, value in zip(self.extra, row[width:], strict=True):
                setattr(instance, name, value)
            instances.append(instance)
        return instances


def column_converters(model: type[Model], fields: Sequence, connection) -> list[tuple[int, Any, list]]:
    """For each of ``fields`` (columns of a result row, in order) that the ORM converts on reading:
    its position, its column and the ORM's converters (the backend's, then the field's own)."""
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        functions = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if functions:
            converters.append((index, column, functions))
    return converters


def converted(row: Sequence[Any], converters: list[tuple[int, Any, list]], connection) -> list[Any]:
    """``row``'s values as the ORM gives them, through the converters of :func:`column_converters`."""
    values = list(row)
    for index, column, functions in converters:
        value = values[index]
        for convert in functions:
            value = convert(value, column, connection)
        values[index] = value
    return values
