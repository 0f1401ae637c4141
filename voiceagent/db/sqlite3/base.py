"""SQLite, with the threads of one process queueing for the write lock in Python.

Django's supported options do most of the job and are used (voiceagent/settings.py):
``transaction_mode="IMMEDIATE"`` takes the write lock at BEGIN, so a read-then-write
transaction waits instead of failing; ``timeout`` (DATABASE_LOCK_TIMEOUT_SECONDS) bounds
SQLite's busy wait; ``init_command`` sets WAL and ``synchronous=NORMAL``. What they cannot
change is how SQLite's busy handler waits: it sleeps in steps that grow to 100 ms and a
woken writer may lose the race again, so under a few dozen concurrent requests the unlucky
writers wait seconds. Python's sqlite3 offers no other busy handler, and no PRAGMA changes
it. Measured on the project's 2-core machine (shared with other test runs, so ranges),
zero errors throughout:

- the API benchmark's load (bench/api.py: 4 uvicorn workers, 32 clients, 1500 creates
  then 1500 ends): the stock backend with these options, create p99 3.1-5.9 s and end
  p99 4.3-9.1 s (7 runs); adding PRAGMAs mmap_size, cache_size, temp_store and
  wal_autocheckpoint=4000 to init_command did not help (3.0-8.0 s, 4.5-8.7 s; 3 runs).
  With this queue: create p99 1.3-2.9 s, end p99 2.7-3.0 s (5 runs);
- writers alone (4 processes x 8 threads x 60 transactions): p99 4.3 s and up to
  10.8 s stock, 0.5-1.0 s with this queue.

So the request threads of one worker process queue on a process-wide lock before BEGIN
IMMEDIATE: only one writer per process is ever in SQLite's busy loop, and the rest wake
the moment the lock is free. Readers are not affected. The queue hooks only the public
transaction methods of the connection: ``set_autocommit(False)`` (how ``atomic()`` begins
the outermost transaction) takes the lock, ``commit()``, ``rollback()`` and ``close()``
release it.

Between worker processes, writers then take a lock file beside the database (``<name>-writer.lock``,
flock) before BEGIN IMMEDIATE, trying again every half millisecond rather than in SQLite's growing
steps, so SQLite's own busy wait is almost never entered (issue 10: 2 workers with one HTTP thread
each sat idle in its sleeps; conversation-init's p99 with 16 clients went from 585 to 89 ms, session
creation's from about 300 to about 200 ms).

The queue and SQLite's busy wait share one budget, the connection's ``timeout``
(DATABASE_LOCK_TIMEOUT_SECONDS): a writer that queued for most of it gets only the rest
in SQLite, so no request waits for the lock longer than configured. Past it the writer
gets OperationalError ("database is locked"), which the project answers with 503 and
Retry-After.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator

from django.db import OperationalError
from django.db.backends.sqlite3 import base

_process_writer = threading.Lock()
# One open lock file per database file and process: flock belongs to the open file, and this
# process's writers already take turns on _process_writer.
_writer_lock_files: dict[str, int] = {}
_writer_lock_files_guard = threading.Lock()
_LOCK_FILE_RETRY_SECONDS = 0.0005

# Below this, what the queue took from the budget is not worth a PRAGMA round trip.
_NEGLIGIBLE_WAIT_SECONDS = 0.005


class DatabaseWrapper(base.DatabaseWrapper):
    _holds_process_writer = False
    _holds_writer_lock_file: int | None = None
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

    def set_autocommit(self, autocommit, force_begin_transaction_with_broken_autocommit=False):
        # atomic() begins the outermost transaction this way; in IMMEDIATE mode that BEGIN takes the write lock.
        immediate = str(self.settings_dict["OPTIONS"].get("transaction_mode") or "").upper() == "IMMEDIATE"
        if autocommit or not force_begin_transaction_with_broken_autocommit or not immediate:
            return super().set_autocommit(autocommit, force_begin_transaction_with_broken_autocommit)
        # Connect (a request's first query does) before queueing: others wait behind the queue, not behind a connect.
        self.ensure_connection()
        budget = self.lock_wait_seconds
        started = time.monotonic()
        if not _process_writer.acquire(timeout=budget):
            raise OperationalError(f"database is locked (waited {budget:g} s for this process's other writers)")
        self._holds_process_writer = True
        try:
            self._take_writer_lock_file(started + budget, budget)
        except BaseException:
            self._release_process_writer()
            raise
        queued = time.monotonic() - started
        try:
            if queued < _NEGLIGIBLE_WAIT_SECONDS:
                return super().set_autocommit(autocommit, force_begin_transaction_with_broken_autocommit)
            self._set_busy_timeout(max(budget - queued, 0.0))
            try:
                return super().set_autocommit(autocommit, force_begin_transaction_with_broken_autocommit)
            finally:
                self._set_busy_timeout(budget)
        except BaseException:
            self._release_process_writer()
            raise

    def commit(self):
        try:
            return super().commit()
        finally:
            self._release_process_writer()

    def rollback(self):
        try:
            return super().rollback()
        finally:
            self._release_process_writer()

    def close(self):
        try:
            return super().close()
        finally:
            self._release_process_writer()

    def _set_busy_timeout(self, seconds: float) -> None:
        if self.connection is not None:
            self.connection.execute(f"PRAGMA busy_timeout = {max(0, int(seconds * 1000))}")

    def _writer_lock_file(self) -> int | None:
        name = str(self.settings_dict["NAME"])
        if self.is_in_memory_db() or not name:
            return None
        with _writer_lock_files_guard:
            descriptor = _writer_lock_files.get(name)
            if descriptor is None:
                descriptor = os.open(f"{name}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
                _writer_lock_files[name] = descriptor
            return descriptor

    def _take_writer_lock_file(self, deadline: float, budget: float) -> None:
        descriptor = self._writer_lock_file()
        if descriptor is None:
            return
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise OperationalError(
                        f"database is locked (waited {budget:g} s for other processes' writers)"
                    ) from None
                time.sleep(_LOCK_FILE_RETRY_SECONDS)
            else:
                self._holds_writer_lock_file = descriptor
                return

    def _release_process_writer(self) -> None:
        descriptor = self._holds_writer_lock_file
        if descriptor is not None:
            self._holds_writer_lock_file = None
            fcntl.flock(descriptor, fcntl.LOCK_UN)
        if self._holds_process_writer:
            self._holds_process_writer = False
            _process_writer.release()
