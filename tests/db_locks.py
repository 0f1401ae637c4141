"""Hold the database's write lock from outside Django, as another process or a long job would."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import psycopg
from django.db import connection

from sessions.models import VoiceSession


@contextlib.contextmanager
def hold_write_lock() -> Iterator[None]:
    """While inside, no write to the sessions can take its lock (SQLite: none at all).

    SQLite: BEGIN IMMEDIATE on a connection of our own. PostgreSQL: LOCK TABLE ... IN EXCLUSIVE
    MODE on the sessions table, which lets readers in and keeps every writer out.
    Only for tests with ``django_db(transaction=True)``: the test's own connection must not hold a
    transaction of its own.
    """
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        holder = sqlite3.connect(database["NAME"], isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        return
    holder = psycopg.connect(
        dbname=database["NAME"],
        user=database["USER"] or None,
        password=database["PASSWORD"] or None,
        host=database["HOST"] or None,
        port=database["PORT"] or None,
    )
    try:
        # Not in autocommit: the LOCK opens a transaction that holds it until the rollback.
        table = connection.ops.quote_name(VoiceSession._meta.db_table)
        holder.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        yield
        holder.rollback()
    finally:
        holder.close()
