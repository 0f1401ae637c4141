"""SQLite: the writers of one process queue in Python (voiceagent/db/sqlite3/base.py), and every way a
transaction ends hands the queue on. A writer that kept it would make every other writer of its
process wait out DATABASE_LOCK_TIMEOUT_SECONDS and fail with "database is locked".
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading

import pytest
from django.db import OperationalError, connection, connections, transaction

from sessions.models import VoiceSession

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the writer queue is the SQLite backend's"),
]

LOCK_WAIT = 2.0


@pytest.fixture(autouse=True)
def short_lock_wait():
    options = connection.settings_dict["OPTIONS"]
    saved = options.get("timeout")
    options["timeout"] = LOCK_WAIT
    connection.close()
    yield
    options["timeout"] = saved
    connection.close()


def start_writer(customer_id: str, *, atomic: bool = False) -> tuple[threading.Thread, list[BaseException | None]]:
    """A thread of this process that creates a session (in a transaction of its own if ``atomic``, as the
    services write); the list gets what it raised (None if nothing)."""
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            with transaction.atomic() if atomic else contextlib.nullcontext():
                VoiceSession.objects.create(customer_id=customer_id)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=write)
    thread.start()
    return thread, outcome


def write_from_another_thread(customer_id: str, *, atomic: bool = False) -> BaseException | None:
    thread, outcome = start_writer(customer_id, atomic=atomic)
    thread.join(timeout=LOCK_WAIT * 5)
    assert not thread.is_alive()
    return outcome[0]


def test_a_committed_transaction_lets_the_next_writer_of_this_process_in():
    with transaction.atomic():
        VoiceSession.objects.create(customer_id="first")

    assert write_from_another_thread("second") is None
    assert VoiceSession.objects.count() == 2


def test_a_rolled_back_transaction_lets_the_next_writer_in():
    with pytest.raises(ValueError), transaction.atomic():
        VoiceSession.objects.create(customer_id="undone")
        raise ValueError("something went wrong mid-transaction")

    assert write_from_another_thread("next") is None
    assert list(VoiceSession.objects.values_list("customer_id", flat=True)) == ["next"]


def test_a_connection_closed_inside_a_transaction_lets_the_next_writer_in():
    with transaction.atomic():
        VoiceSession.objects.create(customer_id="lost")
        connection.close()  # SQLite rolls the transaction back

    assert write_from_another_thread("next") is None
    assert list(VoiceSession.objects.values_list("customer_id", flat=True)) == ["next"]


def test_a_writer_waits_for_the_writer_ahead_of_it_and_then_writes():
    with transaction.atomic():
        VoiceSession.objects.create(customer_id="first")
        thread, behind = start_writer("behind")
        thread.join(timeout=0.3)  # it waits: this transaction holds the write lock
        assert thread.is_alive()

    thread.join(timeout=LOCK_WAIT * 5)
    assert behind == [None]
    assert VoiceSession.objects.count() == 2


def test_a_writer_that_cannot_get_the_queue_in_time_gets_database_is_locked():
    with transaction.atomic():
        VoiceSession.objects.create(customer_id="long transaction")
        error = write_from_another_thread("too late")

    assert isinstance(error, OperationalError)
    assert "database is locked" in str(error)


def hold_the_lock_file_as_another_process_would() -> int:
    """flock belongs to an open file: a second open of the lock file stands for another worker process."""
    name = str(connection.settings_dict["NAME"])
    descriptor = os.open(f"{name}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    return descriptor


def test_another_process_writing_makes_this_one_wait_then_write():
    descriptor = hold_the_lock_file_as_another_process_would()
    try:
        thread, outcome = start_writer("after the other process", atomic=True)
        thread.join(timeout=0.3)
        assert thread.is_alive() and not VoiceSession.objects.filter(customer_id="after the other process").exists()
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)
    thread.join(timeout=LOCK_WAIT * 5)
    assert outcome == [None]
    assert VoiceSession.objects.filter(customer_id="after the other process").exists()


def test_another_process_writing_past_the_budget_gives_database_is_locked():
    descriptor = hold_the_lock_file_as_another_process_would()
    try:
        error = write_from_another_thread("too late", atomic=True)
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)
    assert isinstance(error, OperationalError)
    assert "other processes' writers" in str(error)
    # And the queue of this process is free again: the next writer gets in.
    assert write_from_another_thread("next one", atomic=True) is None
