"""The publisher: turns "the graph changed" into one snapshot per window on the group.

Any thread may call :func:`request_publish` (a receiver's ``on_commit`` hook, a
management command, the shell); it only bumps a counter and wakes the
publisher's own thread. That thread computes the statistics once, encodes them
once, and sends them to the channel-layer group:

* on the event loop of this process's stream hub when there is one (Channels'
  in-memory layer belongs to the loop that reads it);
* otherwise on the publisher's private loop, kept for the life of the thread so
  that a Redis layer keeps its connection pool (never ``async_to_sync`` per save).

At most one computation starts per ``COALESCE_WINDOW``; a request that arrives
while one runs is served by the next, so the last change of a burst is always
published. A failing database or channel layer is logged and never reaches the
code that saved.

Requests may carry what changed, node by node (a
:class:`graphapp.changes.ChangeBatch`); the changes of one window travel as
the snapshot's message (``changes``), listed up to ``CHANGE_LIMIT`` and
counted past it: a burst adds one bounded field, and the broker still carries
one message per publication.

The last statistics of a burst are sent once more after ``RESEND_AFTER`` quiet
seconds, without the changes: channel layers drop a group message to a full
channel silently, and hubs ignore a message whose statistics they already have.
A publication whose statistics the database could not give is tried again by
itself (after ``RESEND_AFTER`` seconds, then less often up to ``RETRY_AT_MOST``).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import datetime
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final, cast

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.dispatch import Signal

from graphapp import ledger
from graphapp.changes import ChangeBatch
from graphapp.conf import get_config
from graphapp.stats import compute_stats
from graphapp.types import ChannelLayer, Snapshot, StatsMessage
from graphapp.watch import DataVersionWatch

logger = logging.getLogger(__name__)

IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"
RESEND_AFTER: Final = 1.0
RETRY_AT_MOST: Final = 60.0  # seconds between tries while the database fails
#: The publisher's thread keeps its database connection from one publication to
#: the next (opening one was 1.1 of a publication's 4.5 ms on SQLite, a whole
#: connect on PostgreSQL without a pool), and closes it after this many quiet seconds.
IDLE_CLOSE: Final = 5.0

#: Sent in the publisher's thread after each snapshot is computed, with
#: ``snapshot`` (a :class:`graphapp.types.Snapshot`), whether or not the channel
#: layer accepted it. For projects that want the statistics server-side.
graph_stats_published = Signal()

#: Sent in the publisher's thread after each window that changed nodes, with
#: ``changes`` (a :class:`graphapp.changes.ChangeData`: the changes one by one,
#: or their counts per kind when there were more than ``CHANGE_LIMIT``).
graph_changes_published = Signal()


def encode(snapshot: Snapshot) -> str:
    """One line of compact JSON, as every event's ``data`` carries it."""
    return json.dumps(snapshot, separators=(",", ":"))


def state_of(snapshot: Snapshot) -> str:
    """The statistics of a snapshot without its version and time, as a comparable string."""
    fields = (
        snapshot["nodes"],
        snapshot["edges"],
        snapshot["avg_entanglement"],
        snapshot["tiers"],
        snapshot["types"],
    )
    return json.dumps(fields, separators=(",", ":"), sort_keys=True)


def channel_layer() -> ChannelLayer | None:
    """The configured channel layer, or None when CHANNEL_LAYERS lacks the alias."""
    alias = get_config()["CHANNEL_LAYER"]
    try:
        return cast(ChannelLayer | None, get_channel_layer(alias))
    except Exception as exc:  # noqa: BLE001 - any backend's constructor may fail
        logger.error(
            "graphapp: channel layer %r cannot be built: %s: %s", alias, type(exc).__name__, exc
        )
        return None


class Publisher:
    """Coalesces publish requests of one process; see the module's docstring."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._requested = 0  # requests made so far
        self._completed = 0  # requests covered by a finished publication
        self._close_asked = 0  # close_connections() calls made so far
        self._close_done = 0  # ... and served by the thread
        self._version = 0
        self._layer_failing = False
        self._delivery_loop: asyncio.AbstractEventLoop | None = None
        self._changes: ChangeBatch | None = None  # not yet published
        self.published = 0
        self.snapshots = 0
        self.last_published: datetime.datetime | None = None

    # -- API for any thread -------------------------------------------------

    def request(self, changes: ChangeBatch | None = None) -> None:
        """Ask for a publication of the current state, and of ``changes`` if given;
        cheap and never blocks."""
        with self._cond:
            self._requested += 1
            if changes:
                self._add_changes(changes)
            if self._thread is None or not self._thread.is_alive():
                self._start()
        # Already set (a burst): the thread has not cleared it yet, and reads
        # the count, which went up above, only after clearing it.
        if not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every request made so far is published; False on time-out."""
        with self._cond:
            target = self._requested
            return self._cond.wait_for(lambda: self._completed >= target, timeout)

    def close_connections(self, timeout: float = 10.0) -> bool:
        """Have the publisher's thread close its database connections now (before
        a test database is dropped, say); False on time-out."""
        with self._cond:
            thread = self._thread
            if thread is None or not thread.is_alive():
                return True
            self._close_asked += 1
            target = self._close_asked
        self._wake.set()
        with self._cond:
            return self._cond.wait_for(
                lambda: self._close_done >= target or not thread.is_alive(), timeout
            )

    def next_version(self) -> int:
        """Increasing across calls; milliseconds since the epoch when that is larger,
        so that versions stay roughly ordered across processes and restarts."""
        with self._cond:
            self._version = max(self._version + 1, time.time_ns() // 1_000_000)
            return self._version

    def snapshot(self) -> Snapshot:
        """Compute a fresh, versioned snapshot (queries the database)."""
        # Versioned before reading: a later version has read later data, so a
        # slow computation can never overwrite a newer one at the hubs.
        version = self.next_version()
        at = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        stats = compute_stats()
        self.snapshots += 1
        return {"type": "update", **stats, "version": version, "at": at}

    @property
    def layer_failing(self) -> bool:
        """True from a failed send until the next one succeeds."""
        return self._layer_failing

    def deliver_on(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Send on ``loop`` from now on (the stream hub's), or on our own with None.

        A hub that starts also starts the thread, which on SQLite watches for
        other processes' commits while it runs.
        """
        self._delivery_loop = loop
        if loop is not None:
            with self._cond:
                if self._thread is None or not self._thread.is_alive():
                    self._start()

    def _add_changes(self, changes: ChangeBatch) -> None:
        # Called with self._cond held.
        if self._changes is None:
            self._changes = ChangeBatch(get_config()["CHANGE_LIMIT"])
        self._changes.merge(changes)

    def _take_changes(self) -> ChangeBatch | None:
        with self._cond:
            changes, self._changes = self._changes, None
        return changes

    # -- the publisher's thread ------------------------------------------------

    def _start(self) -> None:
        first = self._thread is None
        self._thread = threading.Thread(target=self._run, name="graphapp-publisher", daemon=True)
        self._thread.start()
        if first:
            # A shell or a script that saves and exits still publishes its last change.
            atexit.register(self.flush, 5.0)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        interval = get_config()["WATCH_INTERVAL"]
        watch = _watch() if interval else None
        # The last message, sent once more when nothing followed it for
        # RESEND_AFTER seconds: a layer drops a group message to a full channel
        # without telling anyone, and that one must not be the last of a burst.
        resend: tuple[float, dict[str, Any]] | None = None
        # When to try again after the statistics could not be computed: the
        # request that failed may be the last one, and its state must still go
        # out once the database is back (sooner, then less often while it is down).
        retry_at: float | None = None
        failures = 0
        # When the connection kept open was last used (None: none is open).
        idle_since: float | None = None
        try:
            while True:
                timeout = interval if watch else None
                close_at = idle_since + IDLE_CLOSE if idle_since is not None else None
                for due_at in (resend[0] if resend is not None else None, retry_at, close_at):
                    if due_at is not None:
                        due = max(0.0, due_at - time.monotonic())
                        timeout = due if timeout is None else min(timeout, due)
                self._wake.wait(timeout)
                self._wake.clear()
                with self._cond:
                    asked = self._requested > self._completed
                    close_asked = self._close_asked
                now = time.monotonic()
                if close_asked > self._close_done or (close_at is not None and now >= close_at):
                    connections.close_all()
                    idle_since = None
                    with self._cond:
                        self._close_done = close_asked
                        self._cond.notify_all()
                retry_due = retry_at is not None and now >= retry_at
                # Not asked here: publish only if another process committed.
                if not asked and not retry_due and (watch is None or not watch.changed()):
                    if resend is not None and now >= resend[0]:
                        self._send(loop, resend[1])
                        resend = None
                    continue
                with self._cond:
                    target = self._requested
                started = time.monotonic()
                seen = watch.current() if watch is not None else None
                try:
                    message = self._publish(loop)
                    if message is None:
                        failures += 1
                        retry_at = time.monotonic() + min(
                            RETRY_AT_MOST, RESEND_AFTER * 2 ** min(failures - 1, 16)
                        )
                    else:
                        retry_at, failures = None, 0
                        resend = (time.monotonic() + RESEND_AFTER, message)
                        if watch is not None and seen is not None:
                            watch.accept(seen)
                        _compact_ledger()  # after the send: off the path to the streams
                except Exception:
                    # Unexpected: log it and keep serving; the thread must not die.
                    logger.exception("graphapp: publication failed")
                    connections.close_all()
                finally:
                    with self._cond:
                        self._completed = max(self._completed, target)
                        self._cond.notify_all()
                    idle_since = time.monotonic()
                pause = get_config()["COALESCE_WINDOW"] - (time.monotonic() - started)
                if pause > 0:
                    time.sleep(pause)
        finally:
            connections.close_all()
            loop.close()
            if watch is not None:
                watch.close()

    def _publish(self, own_loop: asyncio.AbstractEventLoop) -> dict[str, Any] | None:
        """Compute and send once; the message sent, or None when the statistics
        could not be computed."""
        # Taken before the computation: every change taken was committed before
        # it starts, so the snapshot sent just before them already shows them.
        changes = self._take_changes()
        try:
            snapshot = self._fresh_snapshot()
        except DatabaseError as exc:
            logger.error(
                "graphapp: statistics not computed, nothing published: %s: %s",
                type(exc).__name__,
                exc,
            )
            if changes:
                with self._cond:  # kept for the next publication
                    self._add_changes(changes)
            return None
        message: StatsMessage = {
            "type": "graph.stats",
            "version": snapshot["version"],
            "data": encode(snapshot),
            "state": state_of(snapshot),
        }
        change_version = self.next_version() if changes else 0
        sent = cast(dict[str, Any], message)
        if changes:
            # Their own, later version: the SSE id of the change event that follows.
            sent = {
                **sent,
                "changes": {"version": change_version, "data": changes.encode(change_version)},
            }
        self._send(own_loop, sent)
        self.published += 1
        self.last_published = datetime.datetime.now(datetime.UTC)
        _notify(graph_stats_published, snapshot=snapshot)
        if changes:
            _notify(graph_changes_published, changes=changes.data(change_version))
        # What a resend repeats: the statistics only, which hubs deduplicate.
        return cast(dict[str, Any], message)

    def _fresh_snapshot(self) -> Snapshot:
        if connections[DEFAULT_DB_ALIAS].connection is not None:
            try:
                return self.snapshot()
            except DatabaseError:
                # The connection kept from the last publication may have died
                # since (a database restarted): once more, on a new one.
                connections.close_all()
        try:
            return self.snapshot()
        except DatabaseError:
            connections.close_all()
            raise

    def _send(self, own_loop: asyncio.AbstractEventLoop, message: dict[str, Any]) -> None:
        layer = channel_layer()
        if layer is None:
            self._layer_failed(LookupError(f"no channel layer {get_config()['CHANNEL_LAYER']!r}"))
            return
        config = get_config()

        def send() -> Coroutine[Any, Any, None]:
            return asyncio.wait_for(
                layer.group_send(config["GROUP"], message), config["SEND_TIMEOUT"]
            )

        loop = self._delivery_loop
        try:
            if loop is not None and loop.is_running():
                _run_on(loop, send, config["SEND_TIMEOUT"] + 1.0)
            else:
                own_loop.run_until_complete(send())
        except Exception as exc:  # noqa: BLE001 - backends raise their own errors
            self._layer_failed(exc)
        else:
            if self._layer_failing:
                logger.info("graphapp: channel layer reachable again; publishing resumed")
            self._layer_failing = False

    def _layer_failed(self, exc: BaseException) -> None:
        # Logged once per outage, not once per save.
        if not self._layer_failing:
            logger.error(
                "graphapp: publishing to the channel layer failed: %s: %s", type(exc).__name__, exc
            )
        self._layer_failing = True


def _compact_ledger() -> None:
    """Fold the degree ledger's pending rows (PostgreSQL; see graphapp.ledger)."""
    if not ledger.in_use(DEFAULT_DB_ALIAS):
        return
    try:
        ledger.compact(DEFAULT_DB_ALIAS)
    except DatabaseError as exc:
        # The statistics stay right (they read the pending rows too); the next
        # publication folds them.
        logger.warning("graphapp: degree ledger not compacted: %s: %s", type(exc).__name__, exc)


def _notify(signal: Signal, **kwargs: Any) -> None:
    for receiver, error in signal.send_robust(sender=Publisher, **kwargs):
        if isinstance(error, Exception):
            logger.error(
                "graphapp: receiver %r of a publication failed: %s: %s",
                receiver,
                type(error).__name__,
                error,
            )


_running_sends: set[asyncio.Task[None]] = set()


def _run_on(
    loop: asyncio.AbstractEventLoop, make: Callable[[], Coroutine[Any, Any, None]], timeout: float
) -> None:
    """Run ``make()`` on another thread's ``loop`` and wait for it.

    The coroutine is made on that loop, when it gets there: a loop that stops
    first (a server shutting down) leaves no coroutine that was never awaited.
    """
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def finish(task: asyncio.Task[None]) -> None:
        _running_sends.discard(task)
        if task.cancelled():
            done.set_exception(asyncio.CancelledError())
        elif (error := task.exception()) is not None:
            done.set_exception(error)
        else:
            done.set_result(None)

    def start() -> None:
        if done.set_running_or_notify_cancel():
            task = loop.create_task(make())
            _running_sends.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(finish)

    loop.call_soon_threadsafe(start)
    try:
        done.result(timeout)
    except TimeoutError:
        done.cancel()  # not started yet: it never will be
        raise


def uses_in_memory_layer() -> bool:
    """True when graphapp's channel layer is Channels' one-process in-memory layer."""
    alias = get_config()["CHANNEL_LAYER"]
    layer = getattr(settings, "CHANNEL_LAYERS", {}).get(alias, {})
    return bool(layer.get("BACKEND") == IN_MEMORY_LAYER)


def _watch() -> DataVersionWatch | None:
    # Only where nothing else carries other processes' changes: with a shared
    # layer (Redis) they publish themselves, and watching would recompute each.
    if not uses_in_memory_layer():
        return None
    return DataVersionWatch.for_database(DEFAULT_DB_ALIAS)


#: The publisher of this process.
publisher = Publisher()


def request_publish(changes: ChangeBatch | None = None) -> None:
    """Publish the graph's current statistics soon (coalesced), and ``changes``
    with them if given; for any thread."""
    publisher.request(changes)


def publish_now(timeout: float | None = 10.0) -> bool:
    """Publish and wait until it is done: for scripts and commands after bulk work.

    Not from a running event loop: waiting there would block the loop that the
    publication may need (use :func:`request_publish`).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("publish_now() would block the running event loop")
    publisher.request()
    return publisher.flush(timeout)
