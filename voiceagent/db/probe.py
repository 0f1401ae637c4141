"""Can a write get its lock right now? A cheap probe for /healthz, rolled back, nothing written.

SQLite: BEGIN IMMEDIATE (the write lock every write transaction takes here) with a short busy
wait, then ROLLBACK. PostgreSQL: in a transaction with a short ``lock_timeout``, ``LOCK TABLE
<table> IN ROW EXCLUSIVE MODE`` (the table lock every INSERT, UPDATE and DELETE on it takes),
then ROLLBACK. That lock conflicts with exactly what stops writes to the whole table: a LOCK
TABLE in SHARE mode or stronger, ALTER TABLE, a non-concurrent CREATE INDEX, VACUUM FULL. It
writes no row and no WAL, and on a read-only standby it fails, which is right too. A single
locked row is not a degraded database (only writers of that row wait), so rows are not probed.
"""

from __future__ import annotations

from django.db import Error, OperationalError, connection, transaction


def write_lock_probe(*, table: str, timeout: float) -> str | None:
    """None when a write to ``table`` could take its lock within ``timeout`` seconds; else why not."""
    try:
        if connection.vendor == "sqlite":
            with connection.lock_wait(timeout), transaction.atomic():
                transaction.set_rollback(True)
        else:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{max(1, int(timeout * 1000))}ms"])
                cursor.execute(f"LOCK TABLE {connection.ops.quote_name(table)} IN ROW EXCLUSIVE MODE")
                transaction.set_rollback(True)
    except Error as exc:
        if is_lock_timeout(exc):
            return f"write lock not obtained within {timeout:g} s"
        return type(exc).__name__
    return None


def is_lock_timeout(exc: BaseException) -> bool:
    """SQLite's "database is locked" or PostgreSQL's lock_not_available (55P03)."""
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    if getattr(cause, "sqlstate", None) == "55P03":
        return True
    return "database is locked" in str(exc)
