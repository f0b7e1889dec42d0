"""The database worker: one thread, its connection kept between jobs, closed when idle."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

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
