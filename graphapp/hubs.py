"""Per-process fan-out: one hub per event loop, holding every open stream's mailbox.

A hub takes each message once (from the transport: this process's publisher
on the in-memory layer, the group on a shared one), frames it once and offers
the same bytes to every :class:`~graphapp.mailbox.Subscriber`. While it has
subscribers it also confirms them against the database every
``VERIFY_INTERVAL`` (graphapp.verify): it computes the snapshot itself when a
version the database holds has not arrived, and when it cannot read the
database it tells its streams ``stale`` (and ``live`` again once it can). So
streams converge to the database whatever the layer lost, and say so when they
cannot. The hub starts with its first subscriber and stops with its last.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import logging
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError

from graphapp import snapshots, transport, wire
from graphapp.changes import ChangeBatch
from graphapp.conf import get_config
from graphapp.mailbox import Subscriber
from graphapp.types import Snapshot, StatsMessage, Status
from graphapp.verify import Verdict, Verifier

logger = logging.getLogger(__name__)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


class Hub:
    """The streams of one event loop, and what they have been sent."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.subscribers: set[Subscriber] = set()
        self.latest: bytes | None = None  # the latest stats frame
        self.latest_version = -1
        self.latest_state = ""
        self.stale = False
        self.confirmed_at: str | None = None
        self.joined = False  # subscribed to a shared layer's group
        self._tasks: list[asyncio.Task[None]] = []
        self._loading: asyncio.Task[None] | None = None
        self._reading: concurrent.futures.Future[int | None] | None = None
        self._refreshing: concurrent.futures.Future[Snapshot] | None = None

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    @property
    def status(self) -> Status:
        return {
            "state": "stale" if self.stale else "live",
            "confirmed_at": self.confirmed_at,
            "version": self.latest_version if self.latest_version >= 0 else None,
        }

    # -- streams ---------------------------------------------------------------

    async def subscribe(self, session: str = "") -> Subscriber:
        """A subscriber holding the latest snapshot (and the status, when stale).

        ``session`` (a digest, see graphapp.revoke) lets a logout end it at once.
        """
        subscriber = Subscriber(session)
        self.subscribers.add(subscriber)
        try:
            if not self.running:
                self._start()
            if self.latest is None:
                # One computation for every stream that connects before it ends:
                # a thousand reconnecting browsers cost one, not a thousand.
                if self._loading is None or self._loading.done():
                    self._loading = asyncio.create_task(self._refresh())
                await asyncio.shield(self._loading)
        except BaseException:
            # Cancelled (the client left) while waiting: leave nothing.
            self.unsubscribe(subscriber)
            raise
        if self.latest is not None:
            subscriber.offer(self.latest)
        if self.stale:
            subscriber.offer_status(wire.status_frame(self.status))
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        if not self.subscribers:
            self._stop()

    def close_all(self, final: Callable[[], bytes]) -> int:
        """End every stream, each sending ``final()`` last; returns how many."""
        return self._end(list(self.subscribers), final)

    def revoke(self, session: object) -> int:
        """End the streams of a session that logged out (see graphapp.revoke)."""
        if not isinstance(session, str) or not session:
            return 0
        ended = self._end([s for s in self.subscribers if s.session == session])
        if ended:
            logger.info("graphapp: %d stream(s) ended by their session's logout", ended)
        return ended

    def _end(self, ending: list[Subscriber], final: Callable[[], bytes] | None = None) -> int:
        self.subscribers.difference_update(ending)
        for subscriber in ending:
            subscriber.close(final() if final is not None else b"")
        if not self.subscribers:
            self._stop()
        return len(ending)

    # -- life --------------------------------------------------------------------

    def _start(self) -> None:
        if transport.uses_in_memory_layer():
            transport.listen_here(self.loop, self.receive)
        else:
            subscription = transport.GroupSubscription(self.receive, self._on_joined)
            self._tasks.append(asyncio.create_task(subscription.run(), name="graphapp-hub-group"))
        self._tasks.append(asyncio.create_task(self._verify(), name="graphapp-hub-verify"))

    def _stop(self) -> None:
        transport.stop_listening(self.loop)
        for task in self._tasks:
            task.cancel()
        # A load in progress finishes for the subscribers awaiting it; nobody
        # else sees its result (_accept ignores it while not running).
        self._tasks, self._loading, self._reading, self._refreshing = [], None, None, None
        # What we held may be stale by the time someone subscribes again.
        self.latest, self.latest_version, self.latest_state = None, -1, ""
        self.stale, self.joined = False, False

    def _on_joined(self, joined: bool) -> None:
        self.joined = joined

    # -- messages ------------------------------------------------------------------

    def receive(self, message: dict[str, Any]) -> None:
        """One message from the transport (in the hub's loop)."""
        if message.get("type") == wire.REVOKE:
            self.revoke(message.get("session"))
            return
        parsed = wire.parse_stats(message)
        if parsed is None:
            logger.warning("graphapp: ignored a malformed message on the group: %.200r", message)
            return
        self._accept(parsed)

    def _accept(self, message: StatsMessage, *, replace: bool = False) -> None:
        """Offer a snapshot that is newer than what the streams have (or any
        snapshot, with ``replace``: the database's own state), and its changes."""
        if not self.running:
            return
        version = message["version"]
        if replace or version > self.latest_version:
            if message["state"] != self.latest_state:
                frame = wire.stats_frame(version, message["data"])
                self.latest, self.latest_state = frame, message["state"]
                for subscriber in self.subscribers:
                    subscriber.offer(frame)
            self.latest_version = version
        changes = message.get("changes")
        if changes is not None:
            # Even when the statistics told nothing new (a node created and
            # deleted within one window, or a snapshot this hub computed first),
            # the changes do: each publication's come once, whatever its order.
            self._accept_changes(version, changes["data"])

    def _accept_changes(self, version: int, data: str) -> None:
        try:
            changes = ChangeBatch.decode(data, get_config()["CHANGE_LIMIT"])
        except ValueError as exc:
            logger.warning("graphapp: ignored a malformed change message: %s", exc)
            return
        frame = wire.change_frame(data)
        for subscriber in self.subscribers:
            subscriber.offer_changes(version, changes, frame)

    # -- the database's word ---------------------------------------------------------

    async def _verify(self) -> None:
        verifier = Verifier()
        interval = get_config()["VERIFY_INTERVAL"]
        while True:
            await asyncio.sleep(interval)
            try:
                await self._look(verifier, interval)
            except Exception as exc:
                # Unexpected: the look must go on, and the streams be told.
                logger.exception("graphapp: the hub's look at the database failed")
                self._unconfirmed(f"{type(exc).__name__}: {exc}")

    async def _look(self, verifier: Verifier, interval: float) -> None:
        read, database = await self._read_version(interval)
        if not read:
            return
        verdict = verifier.observe(database, self.latest_version)
        if verdict is Verdict.REFRESH:
            # Replacing a newer snapshot only when the database itself went back
            # (a restore), or keeps no version (the versions are then per-process
            # clocks, and a skewed one must not outrank what this look read): a
            # refresh that a newer message overtook is just late.
            await self._refresh(replace=database is None or database < self.latest_version)
        elif verdict is Verdict.CONFIRMED:
            self._confirmed()

    async def _read_version(self, interval: float) -> tuple[bool, int | None]:
        """Whether the database answered (else the hub is now stale), and its version."""
        # One read at a time: a database that hangs must not gather a queue of them.
        if self._reading is None or self._reading.done():
            self._reading = snapshots.worker.submit(snapshots.current_version)
        reading = asyncio.wrap_future(self._reading)
        try:
            async with asyncio.timeout(get_config()["VERIFY_TIMEOUT"]):
                return True, await asyncio.shield(reading)
        except TimeoutError:
            self._unconfirmed("the database did not answer")
        except DatabaseError as exc:
            self._unconfirmed(f"{type(exc).__name__}: {exc}")
        return False, None

    async def _refresh(self, *, replace: bool = False) -> None:
        """Compute the snapshot here and offer it (the database's own state)."""
        # One at a time, and never waited for longer than VERIFY_TIMEOUT: a
        # statistics query that hangs must leave the streams stale, not silent.
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = snapshots.worker.submit(snapshots.take)
        computing = asyncio.wrap_future(self._refreshing)
        try:
            async with asyncio.timeout(get_config()["VERIFY_TIMEOUT"]):
                snapshot = await asyncio.shield(computing)
        except TimeoutError:
            self._unconfirmed("the statistics did not come within VERIFY_TIMEOUT")
            return
        except DatabaseError as exc:
            self._unconfirmed(f"{type(exc).__name__}: {exc}")
            return
        self._take(snapshot, replace=replace)
        snapshots.worker.submit(snapshots.tidy)

    def _take(self, snapshot: Snapshot, *, replace: bool) -> None:
        if not self.running:
            return
        if replace and snapshot["version"] < self.latest_version:
            logger.warning(
                "graphapp: the database's version went back from %d to %d (restored?); "
                "streams follow the database",
                self.latest_version,
                snapshot["version"],
            )
        self._accept(wire.stats_message(snapshot), replace=replace)
        self._confirmed()

    def _confirmed(self) -> None:
        self.confirmed_at = _now()
        if self.stale:
            self.stale = False
            logger.info("graphapp: the database answers again; streams are live")
            self._offer_status()

    def _unconfirmed(self, reason: str) -> None:
        if not self.stale and self.running:
            self.stale = True
            logger.error(
                "graphapp: cannot confirm %d stream(s) against the database, telling them "
                "they are stale: %s",
                len(self.subscribers),
                reason,
            )
            self._offer_status()

    def _offer_status(self) -> None:
        frame = wire.status_frame(self.status)
        for subscriber in self.subscribers:
            subscriber.offer_status(frame)


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def get_hub() -> Hub:
    """The hub of the running event loop (created on first use)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        for closed in [other for other in _hubs if other.is_closed()]:
            del _hubs[closed]
        hub = _hubs[loop] = Hub(loop)
    return hub


def all_hubs() -> list[Hub]:
    """Every hub of this process whose loop still runs."""
    return [hub for loop, hub in list(_hubs.items()) if not loop.is_closed()]


def current_hub() -> Hub | None:
    """The hub of the running loop if one exists; for health reports."""
    try:
        return _hubs.get(asyncio.get_running_loop())
    except RuntimeError:
        return None
