"""A thread that does a process's database work and keeps its connection between jobs.

Opening a connection was a quarter of a publication's cost on SQLite and a
whole connect on PostgreSQL without a pool, so a worker keeps its connection
from one job to the next; it closes it after ``IDLE_CLOSE`` quiet seconds (a
process that streams for hours must not hold connections it does not use) and
after a job that failed on the database (the connection may be broken: the
next job opens a new one). A job that fails on a connection kept from an
earlier one runs once more on a new connection: the first job after a database
restart does not fail for it. So jobs must be safe to run twice (reads, and
writes in a transaction of their own). One job runs at a time, in the order given.

A job that cannot reach the database at all (no connection: the server down,
the pool's wait over) fails the jobs queued behind it too, with
:class:`~graphapp.exceptions.DatabaseUnreachable`: each would wait as long
again for the same answer, and the last of a queue of stream checks would
wait for all of them. A job given afterwards tries again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final, TypeVar

from django.db import DatabaseError, connections

from graphapp.exceptions import DatabaseUnreachable

T = TypeVar("T")

IDLE_CLOSE: Final = 5.0

_Job = tuple[Callable[[], Any], concurrent.futures.Future[Any]]

_workers: weakref.WeakSet[DatabaseWorker] = weakref.WeakSet()


class DatabaseWorker(concurrent.futures.Executor):
    """One daemon thread, started on first use, that runs jobs one by one.

    An Executor, so that asgiref's ``ThreadSensitiveContext(executor=...)`` can
    send the ORM calls of a block of async code here (graphapp.access).
    """

    def __init__(self, name: str, idle_close: float = IDLE_CLOSE) -> None:
        self.name = name
        self.idle_close = idle_close
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        _workers.add(self)

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """Run ``fn(*args, **kwargs)`` in the worker's thread; its future."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        job = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._jobs.put((job, future))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the thread once the jobs given so far are done."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._jobs.put(None)
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def call(self, job: Callable[[], T], timeout: float | None = None) -> T:
        """Run ``job`` in the worker's thread and wait for its result (from
        another thread, never the worker's own)."""
        return self.submit(job).result(timeout)

    async def run(self, job: Callable[[], T]) -> T:
        """Run ``job`` in the worker's thread and await its result.

        Cancelling the await does not stop a job that has started.
        """
        return await asyncio.wrap_future(self.submit(job))

    def close_connections(self, timeout: float = 10.0) -> None:
        """Close the thread's connections now (before a test database is dropped)."""
        if self._thread is not None and self._thread.is_alive():
            self.call(connections.close_all, timeout)

    @property
    def connected(self) -> bool:
        """Whether the worker holds a database connection (read from any thread:
        a hint, for health reports and tests)."""
        return bool(self._connected)

    _connected = False

    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._jobs.get(timeout=self.idle_close if self._connected else None)
                except queue.Empty:
                    connections.close_all()  # quiet for idle_close seconds
                    self._connected = False
                    continue
                if item is None:
                    return
                unreachable = self._do(*item)
                if unreachable is not None and not self._fail_queued(unreachable):
                    return
        finally:
            connections.close_all()
            self._connected = False

    def _do(
        self, job: Callable[[], Any], future: concurrent.futures.Future[Any]
    ) -> DatabaseError | None:
        """Run one job; the error when it could not reach the database."""
        if not future.set_running_or_notify_cancel():
            return None
        unreachable = None
        try:
            try:
                result = job()
            except DatabaseError:
                if not self._connected:
                    raise
                # The connection kept from an earlier job may have died since
                # (a database restarted): once more, on a new one.
                connections.close_all()
                self._connected = False
                result = job()
        except DatabaseError as exc:
            if not self._holds_connection():
                unreachable = exc  # it failed to connect
            connections.close_all()  # maybe broken: a new one next time
            self._connected = False
            future.set_exception(exc)
        except Exception as exc:  # noqa: BLE001 - handed to whoever waits for the job
            future.set_exception(exc)
        else:
            future.set_result(result)
        self._connected = self._holds_connection()
        return unreachable

    def _fail_queued(self, error: DatabaseError) -> bool:
        """Fail every job queued now with ``error``; False if the worker was
        told to stop meanwhile."""
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                return True
            if item is None:
                return False
            future = item[1]
            if future.set_running_or_notify_cancel():
                failure = DatabaseUnreachable(f"not tried, the database was unreachable: {error}")
                failure.__cause__ = error
                future.set_exception(failure)

    @staticmethod
    def _holds_connection() -> bool:
        return any(conn.connection is not None for conn in connections.all(initialized_only=True))


def close_every_connection(timeout: float = 10.0) -> None:
    """Have every worker of this process close its connections now."""
    for worker in list(_workers):
        worker.close_connections(timeout)
