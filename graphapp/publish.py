"""The publisher: turns "the graph changed" into one snapshot per window, sent once.

The first step of the one-way path (publish -> graphapp.transport ->
graphapp.hubs -> graphapp.streaming). Any thread may call
:func:`request_publish` (a receiver's ``on_commit`` hook, a management command,
the shell); it only bumps a counter and wakes the publisher's thread. That
thread, at most once per ``COALESCE_WINDOW`` (:class:`graphapp.timers.Window`),
has the snapshot computed on the snapshot worker (graphapp.snapshots), encodes
it once (graphapp.wire) with the window's node changes, and sends it through
the transport of the configured layer. A request that arrives while one runs
is served by the next, so the last change of a burst is always published.

Nothing here retries a send: a message the layer lost is made good by every
hub's own look at the database (graphapp.hubs). A publication whose statistics
the database could not give is tried again (:class:`graphapp.timers.Backoff`),
for its changes and for the receivers of :data:`graph_stats_published`. A
failing database or layer is logged and never reaches the code that saved.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime
import functools
import logging
import threading
import time
from typing import Any, Final

from django.db import DatabaseError
from django.dispatch import Signal

from graphapp import history, replay, snapshots, transport, wire
from graphapp.changes import ChangeBatch
from graphapp.conf import get_config
from graphapp.durations import Durations
from graphapp.timers import Backoff, Window
from graphapp.types import Snapshot

logger = logging.getLogger(__name__)

RETRY_FIRST: Final = 1.0  # seconds before the first retry after the database failed
RETRY_AT_MOST: Final = 60.0  # ... doubling up to this

#: Sent in the publisher's thread after each snapshot is computed, with
#: ``snapshot`` (a :class:`graphapp.types.Snapshot`), whether or not the channel
#: layer accepted it. For projects that want the statistics server-side.
graph_stats_published = Signal()

#: Sent in the publisher's thread after each window that changed nodes, with
#: ``changes`` (a :class:`graphapp.changes.ChangeData`: the changes one by one,
#: or their counts per kind when there were more than ``CHANGE_LIMIT``).
graph_changes_published = Signal()


class Publisher:
    """Coalesces publish requests of one process; see the module's docstring."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._requested = 0  # requests made so far
        self._completed = 0  # requests covered by a finished publication
        self._delivered = 0  # ... by one that reached the transport
        self._changes: ChangeBatch | None = None  # not yet published
        self.published = 0  # publications that reached the transport
        self.failures = 0  # publications that did not (database or layer)
        self.snapshots = 0  # snapshots computed
        self.last_published: datetime.datetime | None = None
        self.layer_failing = False
        # Seconds from the first request a publication serves (a commit) to its send.
        self.lag = Durations()
        self._waiting_since: float | None = None  # the first request not yet taken

    # -- API for any thread -------------------------------------------------

    def request(self, changes: ChangeBatch | None = None) -> None:
        """Ask for a publication of the current state, and of ``changes`` if given;
        cheap and never blocks."""
        with self._cond:
            self._requested += 1
            if self._waiting_since is None:
                self._waiting_since = time.monotonic()
            if changes:
                self._add_changes(changes)
            if self._thread is None or not self._thread.is_alive():
                self._start()
        # Already set (a burst): the thread has not cleared it yet, and reads
        # the count, which went up above, only after clearing it.
        if not self._wake.is_set():
            self._wake.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every request made so far is served, whether or not its
        publication reached the transport; False on time-out."""
        with self._cond:
            target = self._requested
            return self._cond.wait_for(lambda: self._completed >= target, timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every request made so far is served; whether the
        publication that served them reached the transport (False on time-out,
        or when the database or the layer failed)."""
        with self._cond:
            target = self._requested
            if not self._cond.wait_for(lambda: self._completed >= target, timeout):
                return False
            return self._delivered >= target

    def snapshot(self) -> Snapshot:
        """Compute a fresh, versioned snapshot now (queries the database)."""
        snapshot = snapshots.take()
        self.snapshots += 1
        return snapshot

    def _compute(self, changes: ChangeBatch | None) -> tuple[Snapshot, str | None]:
        """On the snapshot worker: the snapshot, and its changes encoded and logged."""
        snapshot = self.snapshot()
        if not changes:
            return snapshot, None
        # Before the send: a stream that saw this version and reconnects
        # anywhere finds its changes in the log.
        return snapshot, self._log(changes, snapshot["version"])

    def _record_and_tidy(self, snapshot: Snapshot) -> None:
        history.record(snapshot)
        snapshots.tidy()

    def _log_and_tidy(self, changes: ChangeBatch | None) -> None:
        if changes:
            self._log(changes)
        snapshots.tidy()

    def _log(self, changes: ChangeBatch, version: int | None = None) -> str:
        """On the snapshot worker: log ``changes`` under ``version`` (by default
        the graph's version now, which every change taken is part of); their
        encoding. A failing database is logged and loses only their replay."""
        encoded = ""
        try:
            if version is None:
                version = snapshots.current_version() or 0
            encoded = changes.encode(version)
            replay.record(version, encoded)
        except DatabaseError as exc:
            logger.error(
                "graphapp: changes not logged, a stream reconnecting across them will not "
                "replay them: %s: %s",
                type(exc).__name__,
                exc,
            )
        return encoded

    def _add_changes(self, changes: ChangeBatch) -> None:
        # Called with self._cond held.
        if self._changes is None:
            self._changes = ChangeBatch(get_config()["CHANGE_LIMIT"])
        self._changes.merge(changes)

    def _take_changes(self) -> ChangeBatch | None:
        with self._cond:
            changes, self._changes = self._changes, None
        return changes

    def _served(self, target: int, delivered: bool) -> None:
        with self._cond:
            self._completed = max(self._completed, target)
            if delivered:
                self._delivered = max(self._delivered, target)
            self._cond.notify_all()

    # -- the publisher's thread ------------------------------------------------

    def _start(self) -> None:
        first = self._thread is None
        self._thread = threading.Thread(target=self._run, name="graphapp-publisher", daemon=True)
        self._thread.start()
        if first:
            # A shell or a script that saves and exits still publishes its last change.
            atexit.register(self.wait, 5.0)

    def _run(self) -> None:
        senders = transport.Transports()
        window = Window(get_config()["COALESCE_WINDOW"])
        retry = Backoff(RETRY_FIRST, RETRY_AT_MOST)
        try:
            while True:
                self._wake.wait(retry.remaining(time.monotonic()))
                self._wake.clear()
                with self._cond:
                    asked = self._requested > self._completed
                if not asked and not retry.due(time.monotonic()):
                    continue
                if (pause := window.wait(time.monotonic())) > 0:
                    time.sleep(pause)  # requests meanwhile join this publication
                window.start(time.monotonic())
                with self._cond:
                    target = self._requested
                    since, self._waiting_since = self._waiting_since, None
                delivered = False
                try:
                    delivered = self._publish(senders.current(), retry, since)
                except Exception:
                    # Unexpected: log it and keep serving; the thread must not die.
                    logger.exception("graphapp: publication failed")
                finally:
                    self._served(target, delivered)
        finally:
            senders.close()

    def _publish(self, sender: transport.Transport, retry: Backoff, since: float | None) -> bool:
        """Compute, encode and send once; whether it reached the transport.
        ``since``: when the first request it serves was made (None for a retry)."""
        # Taken before the computation: every change taken was committed before
        # it starts, so the snapshot sent with them already shows them.
        changes = self._take_changes()
        if not sender.audience and not _has_receivers():
            # In-memory layer and no stream in this process (a shell, a command,
            # a server whose clients are away): nobody to tell. The servers see
            # the commit through their database, and a stream that reconnects
            # finds the changes in the log; the writes appended to fold are
            # folded here all the same.
            retry.succeeded()
            # Waited for: a command that exits next must not take them along.
            snapshots.worker.call(functools.partial(self._log_and_tidy, changes))
            return True
        try:
            snapshot, encoded = snapshots.worker.call(functools.partial(self._compute, changes))
        except DatabaseError as exc:
            logger.error(
                "graphapp: statistics not computed, nothing published: %s: %s",
                type(exc).__name__,
                exc,
            )
            if changes:
                with self._cond:  # kept for the next publication
                    self._add_changes(changes)
            retry.failed(time.monotonic())
            self.failures += 1
            return False
        retry.succeeded()
        delivered = sender.send(dict(wire.stats_message(snapshot, encoded)))
        self.layer_failing = sender.failing
        if delivered:
            if since is not None:
                self.lag.observe(time.monotonic() - since)
            self.published += 1
            self.last_published = datetime.datetime.now(datetime.UTC)
        else:
            self.failures += 1
        _notify(graph_stats_published, snapshot=snapshot)
        if changes:
            _notify(graph_changes_published, changes=changes.data(snapshot["version"]))
        # After the send (off the path to the streams), and waited for: a
        # command that exits next must not take its history point along.
        snapshots.worker.call(functools.partial(self._record_and_tidy, snapshot))
        return delivered


def _has_receivers() -> bool:
    return graph_stats_published.has_listeners() or graph_changes_published.has_listeners()


def _notify(signal: Signal, **kwargs: Any) -> None:
    for receiver, error in signal.send_robust(sender=Publisher, **kwargs):
        if isinstance(error, Exception):
            logger.error(
                "graphapp: receiver %r of a publication failed: %s: %s",
                receiver,
                type(error).__name__,
                error,
            )


#: The publisher of this process.
publisher = Publisher()


def request_publish(changes: ChangeBatch | None = None) -> None:
    """Publish the graph's current statistics soon (coalesced), and ``changes``
    with them if given; for any thread."""
    publisher.request(changes)


def publish_now(timeout: float | None = 10.0) -> bool:
    """Publish and wait until it is done: for scripts and commands after bulk work.

    True when the publication reached the transport (or, on the in-memory
    layer in a process without streams or receivers, when there was nobody
    here to tell: the servers see the commit through the database); False
    when the database or the layer failed, or on time-out. Not from a running event loop: waiting
    there would block the loop that a stream of this process needs (use
    :func:`request_publish`).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("publish_now() would block the running event loop")
    publisher.request()
    return publisher.flush(timeout)
