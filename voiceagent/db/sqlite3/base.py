"""SQLite, with the threads of one process queueing for the write lock in Python.

SQLite has one write lock per database. A writer that finds it taken sleeps in
SQLite's busy handler, in steps that grow to 100 ms, and may lose the race
again when it wakes: under a few dozen concurrent requests the unlucky ones
waited over a second (the API benchmark's p99). The request threads of one
worker process now queue on a process-wide lock before BEGIN IMMEDIATE, so
only one writer per process is ever in SQLite's busy loop and the rest wake
the moment the lock is free. Readers are not affected.
"""

from __future__ import annotations

import threading

from django.db import OperationalError
from django.db.backends.sqlite3 import base

_process_writer = threading.Lock()


class DatabaseWrapper(base.DatabaseWrapper):
    _holds_process_writer = False

    def _start_transaction_under_autocommit(self):
        if self.transaction_mode != "IMMEDIATE":
            return super()._start_transaction_under_autocommit()
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        if not _process_writer.acquire(timeout=timeout):
            raise OperationalError("database is locked (waited for this process's other writers)")
        self._holds_process_writer = True
        try:
            return super()._start_transaction_under_autocommit()
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
