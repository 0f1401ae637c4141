"""INSERTs written once per process, for the rows every new session writes.

``Model.save()`` compiles its INSERT anew on every call: the statement, each column's quoting and
placeholder, the RETURNING clause. That was 1.2 ms of a 3.6 ms ``POST /voice/sessions`` (issue 10).
A :class:`PreparedInsert` compiles the statement once per database vendor, with the ORM's own
compiler, and then each row costs what must be done per row: each field's ``pre_save`` (defaults
such as ``auto_now_add``) and ``get_db_prep_save`` (its value as the driver wants it; for a column
left at a constant default, that was prepared with the statement), one ``execute``, and the
database-generated columns read back through the ORM's converters (as voiceagent.prepared_reads reads).

What ``save()`` does beside that is kept: ``pre_save``/``post_save`` are sent when something
listens, a failure marks the enclosing atomic block for rollback, and the instance comes back
saved (``_state.adding`` false, its database set).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.db.models import Model
from django.db.models.signals import post_save, pre_save
from django.db.models.sql import InsertQuery

from voiceagent.prepared_reads import column_converters, converted

_NO_DEFAULT = object()
_IMMUTABLE = (str, int, bool, type(None))  # subclasses too: a TextChoices member is a str (no float: -0.0 == 0.0)


def _prepared_default(field, connection) -> tuple[Any, Any]:
    """``(value, its database value)`` when every row left at the field's default writes the same value:
    an immutable constant, an empty dict or list (``default=dict`` / ``list``), or Django's implicit
    default of a field without one ("" or None). Otherwise ``(_NO_DEFAULT, None)``."""
    if not field.has_default():
        value = field.get_default()
    elif field.default in (dict, list):
        value = field.default()
    elif callable(field.default):
        return _NO_DEFAULT, None
    else:
        value = field.default
    if not isinstance(value, (*_IMMUTABLE, dict, list)):
        return _NO_DEFAULT, None
    return value, field.get_db_prep_save(value, connection)


def _is_default(value: Any, default: Any) -> bool:
    """Whether a row's ``value`` writes what the prepared ``default`` writes."""
    if isinstance(default, str):
        return isinstance(value, str) and value == default  # "support" and AgentType.SUPPORT write the same
    if default is None or isinstance(default, bool):
        return value is default
    if isinstance(default, (dict, list)):
        return type(value) is type(default) and not value
    return type(value) is type(default) and value == default


class _Statement:
    """The compiled INSERT for one vendor: SQL, the fields whose values it takes, what it returns."""

    def __init__(self, model: type[Model], connection) -> None:
        meta = model._meta
        # As Model._save_table chooses them for a new row: an automatic primary key is left to the database.
        self.fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field]
        self.returning = list(meta.db_returning_fields) if meta.auto_field is not None else []
        if self.returning and not connection.features.can_return_columns_from_insert:
            raise ImproperlyConfigured(f"{connection.vendor} cannot return {meta.label}'s generated columns")
        query = InsertQuery(model)
        query.insert_values(self.fields, [model()])
        compiler = query.get_compiler(connection=connection)
        compiler.returning_fields = self.returning
        [(self.sql, params)] = compiler.as_sql()
        # Every value must travel as a parameter: a field given SQL of its own (db_default, an
        # expression) would make the statement depend on the row, and it would be wrong to reuse it.
        if len(params) != len(self.fields) or self.sql.count("%s") != len(self.fields):
            raise ImproperlyConfigured(f"{meta.label}'s INSERT is not one parameter per field; use save()")
        # A column left at its default (most of a new row: "", None, False, {}, []) writes the same
        # value every time; it is prepared here, once.
        self.prepared_defaults = [_prepared_default(field, connection) for field in self.fields]
        self.converters = column_converters(model, self.returning, connection)


class PreparedInsert:
    """``insert(instance)`` saves a new ``model`` instance as ``instance.save()`` would, with SQL compiled once."""

    def __init__(self, model: type[Model]) -> None:
        self.model = model
        self._statements: dict[str, _Statement] = {}

    def __call__(self, instance: Model, *, using: str = "default") -> Model:
        if type(instance) is not self.model:
            raise TypeError(f"a prepared insert of {self.model.__name__} given a {type(instance).__name__}")
        connection = connections[using]
        statement = self._statements.get(connection.vendor)
        if statement is None:
            statement = self._statements[connection.vendor] = _Statement(self.model, connection)
        if pre_save.has_listeners(self.model):
            pre_save.send(self.model, instance=instance, raw=False, using=using, update_fields=None)
        params = []
        for field, (default, prepared) in zip(statement.fields, statement.prepared_defaults, strict=True):
            value = field.pre_save(instance, True)
            if default is not _NO_DEFAULT and _is_default(value, default):
                params.append(prepared)
            else:
                params.append(field.get_db_prep_save(value, connection))
        with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
            cursor.execute(statement.sql, params)
            row = cursor.fetchone() if statement.returning else None
        if row is not None:
            for field, value in zip(statement.returning, converted(row, statement.converters, connection), strict=True):
                setattr(instance, field.attname, value)
        instance._state.adding = False
        instance._state.db = using
        if post_save.has_listeners(self.model):
            post_save.send(self.model, instance=instance, created=True, update_fields=None, raw=False, using=using)
        return instance
