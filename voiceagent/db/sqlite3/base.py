"""SQLite, with the threads of one process queueing for the write lock in Python.

SQLite has one write lock per database. A writer that finds it taken sleeps in
SQLite's busy handler, in steps that grow to 100 ms, and may lose the race
again when it wakes: under a few dozen concurrent requests the unlucky ones
waited over a second (the API benchmark's p99). The request threads of one
worker process now queue on a process-wide lock before BEGIN IMMEDIATE, so
only one writer per process is ever in SQLite's busy loop and the rest wake
the moment the lock is free. Readers are not affected.

The queue and SQLite's busy wait share one budget, the connection's ``timeout``
(DATABASE_LOCK_TIMEOUT_SECONDS): a writer that queued for most of it gets only
the rest in SQLite, so no request waits for the lock longer than configured.
Past it the writer gets OperationalError ("database is locked"), which the
project answers with 503 and Retry-After.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from django.db import OperationalError
from django.db.backends.sqlite3 import base

_process_writer = threading.Lock()

# Below this, what the queue took from the budget is not worth a PRAGMA round trip.
_NEGLIGIBLE_WAIT_SECONDS = 0.005


class DatabaseWrapper(base.DatabaseWrapper):
    _holds_process_writer = False
    _lock_wait_override: float | None = None

    @property
    def lock_wait_seconds(self) -> float:
        """How long the next writer may wait for the write lock, queue and busy wait together."""
        if self._lock_wait_override is not None:
            return self._lock_wait_override
        return float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))

    @contextlib.contextmanager
    def lock_wait(self, seconds: float) -> Iterator[None]:
        """Wait at most ``seconds`` for the write lock inside this block (the health probe's short wait)."""
        self.ensure_connection()
        previous = self._lock_wait_override
        self._lock_wait_override = seconds
        self._set_busy_timeout(seconds)
        try:
            yield
        finally:
            self._lock_wait_override = previous
            self._set_busy_timeout(self.lock_wait_seconds)

    def _set_busy_timeout(self, seconds: float) -> None:
        if self.connection is not None:
            self.connection.execute(f"PRAGMA busy_timeout = {max(0, int(seconds * 1000))}")

    def _start_transaction_under_autocommit(self):
        if self.transaction_mode != "IMMEDIATE":
            return super()._start_transaction_under_autocommit()
        budget = self.lock_wait_seconds
        started = time.monotonic()
        if not _process_writer.acquire(timeout=budget):
            raise OperationalError(f"database is locked (waited {budget:g} s for this process's other writers)")
        self._holds_process_writer = True
        queued = time.monotonic() - started
        try:
            if queued < _NEGLIGIBLE_WAIT_SECONDS:
                return super()._start_transaction_under_autocommit()
            self._set_busy_timeout(max(budget - queued, 0.0))
            try:
                return super()._start_transaction_under_autocommit()
            finally:
                self._set_busy_timeout(budget)
        except BaseException:
            self._release_process_writer()
            raise

    def _release_process_writer(self) -> None:
        if self._holds_process_writer:
            self._holds_process_writer = False
            _process_writer.release()

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._release_process_writer()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_process_writer()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._release_process_writer()
