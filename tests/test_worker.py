"""The database worker: one thread, its connection kept between jobs, closed when idle."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, DatabaseError, OperationalError, connections

from graphapp.exceptions import DatabaseUnreachable
from graphapp.models import Node
from graphapp.worker import DatabaseWorker

pytestmark = pytest.mark.django_db(transaction=True)


def connection_of(worker: DatabaseWorker) -> Any:
    return worker.call(lambda: connections[DEFAULT_DB_ALIAS].connection)


@pytest.fixture
def worker() -> Any:
    worker = DatabaseWorker("test-worker", idle_close=0.3)
    yield worker
    worker.shutdown()


async def test_jobs_awaited_together_share_one_connection(worker: DatabaseWorker) -> None:
    counts = await asyncio.gather(*(worker.run(Node.objects.count) for _ in range(50)))
    assert counts == [0] * 50
    assert worker.connected


def test_the_connection_is_kept_between_jobs_and_closed_once_quiet(
    worker: DatabaseWorker,
) -> None:
    assert worker.call(Node.objects.count) == 0
    kept = connection_of(worker)
    assert kept is not None, "the worker closed its connection right after the job"
    worker.call(Node.objects.count)  # a job in the quiet period moves the closing on
    assert connection_of(worker) is kept
    deadline = time.monotonic() + 10
    while worker.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not worker.connected, "still open after idle_close quiet seconds"
    assert connection_of(worker) is None


def test_a_job_that_failed_on_the_database_leaves_no_connection(worker: DatabaseWorker) -> None:
    def fail() -> None:
        Node.objects.count()  # opens the connection
        raise DatabaseError("server closed the connection unexpectedly")

    with pytest.raises(DatabaseError):
        worker.call(fail)
    assert connection_of(worker) is None
    assert worker.call(Node.objects.count) == 0  # a new one next time


def test_jobs_run_one_at_a_time_in_order_on_one_thread(worker: DatabaseWorker) -> None:
    seen: list[tuple[int, str]] = []
    futures = [
        worker.submit(lambda n=n: seen.append((n, threading.current_thread().name)))
        for n in range(20)
    ]
    for future in futures:
        future.result(5)
    assert [n for n, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {"test-worker"}


def test_an_error_of_a_job_reaches_its_caller_and_the_worker_goes_on(
    worker: DatabaseWorker,
) -> None:
    with pytest.raises(ZeroDivisionError):
        worker.call(lambda: 1 / 0)
    assert worker.call(lambda: 2) == 2


def test_a_job_that_cannot_reach_the_database_fails_the_jobs_queued_behind_it(
    worker: DatabaseWorker,
) -> None:
    release = threading.Event()

    def unreachable() -> None:
        release.wait(5)
        # As a connect that the pool could not serve: no connection was made.
        raise OperationalError("couldn't get a connection after 3.00 sec")

    first = worker.submit(unreachable)
    queued = [worker.submit(Node.objects.count) for _ in range(3)]
    release.set()
    with pytest.raises(OperationalError):
        first.result(5)
    for future in queued:
        with pytest.raises(DatabaseUnreachable, match="couldn't get a connection"):
            future.result(5)
    assert worker.call(Node.objects.count) == 0, "a job given afterwards tries again"


def test_a_job_that_failed_on_a_connection_leaves_the_queued_jobs_to_run(
    worker: DatabaseWorker,
) -> None:
    release = threading.Event()

    def failing_query() -> None:
        release.wait(5)
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT * FROM graphapp_no_such_table")

    first = worker.submit(failing_query)
    queued = [worker.submit(Node.objects.count) for _ in range(3)]
    release.set()
    with pytest.raises(DatabaseError):
        first.result(5)
    assert [future.result(5) for future in queued] == [0, 0, 0]


def test_a_worker_told_to_stop_while_failing_the_queue_stops(worker: DatabaseWorker) -> None:
    release = threading.Event()

    def unreachable() -> None:
        release.wait(5)
        raise OperationalError("connection refused")

    first = worker.submit(unreachable)
    queued = worker.submit(Node.objects.count)
    thread = worker._thread
    worker.shutdown(wait=False)
    release.set()
    with pytest.raises(OperationalError):
        first.result(5)
    with pytest.raises(DatabaseUnreachable):
        queued.result(5)
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive()
