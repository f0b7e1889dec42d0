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

A logout's ``graph.revoke`` ends that session's streams; a ``graph.recheck``
(a change of access, graphapp.revoke) has the streams it names checked again
at once (graphapp.revalidate).

It also keeps the history every new stream gets (graphapp.history: loaded
once from the database, then grown by each snapshot it takes), and answers
the streams that reconnect with ``Last-Event-ID`` with the changes they missed
(graphapp.replay): one query for every stream asking the same, as the
snapshot is one computation for every stream that connects before it ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.db import DatabaseError

from graphapp import history, replay, snapshots, transport, wire
from graphapp.changes import ChangeBatch
from graphapp.conf import get_config
from graphapp.mailbox import Subscriber
from graphapp.rechecks import Recheck
from graphapp.revalidate import Revalidator
from graphapp.types import Snapshot, StatsMessage, Status
from graphapp.verify import Verdict, Verifier

logger = logging.getLogger(__name__)

# Replays held at once (one per distinct Last-Event-ID since the last change):
# whatever ids clients send, a hub holds no more.
MAX_REPLAYS = 256


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
        self.timeline = history.Timeline()
        self._history_loading: asyncio.Task[None] | None = None
        self._history_frame: tuple[str, bytes] = ("", b"")
        self._replays: dict[tuple[int, int], asyncio.Future[str]] = {}
        # Subscribers that came while there was no snapshot (the database
        # failing): their history comes with their first snapshot.
        self._awaiting_history: set[Subscriber] = set()
        self._revalidator = Revalidator(lambda: self.subscribers, self._end)

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

    async def subscribe(
        self,
        session: str = "",
        last_event_id: int | None = None,
        *,
        user: str = "",
        session_key: str | None = None,
        recheck: Callable[[], Awaitable[bool]] | None = None,
    ) -> Subscriber:
        """A subscriber holding the latest snapshot, the history, the changes
        missed since ``last_event_id`` when given, and the status when stale.

        ``session`` (a digest, see graphapp.revoke) lets a logout end it at once;
        ``user`` (a pk as a string) and ``session_key`` let a change of their
        access have it checked again at once (graphapp.revalidate), by
        ``recheck()`` when given (a stream no session vouches for).
        """
        subscriber = Subscriber(session, user, session_key, recheck)
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
            if not self.timeline.loaded:
                if self._history_loading is None or self._history_loading.done():
                    self._history_loading = asyncio.create_task(self._load_history())
                await asyncio.shield(self._history_loading)
            upto = self.latest_version
            missed = "" if last_event_id is None or upto < 0 else await self._replay(last_event_id)
        except BaseException:
            # Cancelled (the client left) while waiting: leave nothing.
            self.unsubscribe(subscriber)
            raise
        if self.latest is None:
            self._awaiting_history.add(subscriber)
        else:
            subscriber.offer(self.latest)
            if self.timeline.loaded:
                subscriber.offer_history(self._history())
        if missed:
            subscriber.offer_missed(upto, wire.change_frame(missed))
        if self.stale:
            subscriber.offer_status(wire.status_frame(self.status))
        return subscriber

    def _history(self) -> bytes:
        data = self.timeline.data()
        if data is not self._history_frame[0]:
            self._history_frame = (data, wire.history_frame(data))
        return self._history_frame[1]

    async def _load_history(self) -> None:
        timeline = self.timeline
        try:
            async with asyncio.timeout(get_config()["VERIFY_TIMEOUT"]):
                points = await asyncio.wrap_future(snapshots.worker.submit(history.load))
        except (TimeoutError, DatabaseError) as exc:
            # New streams go without a history event until a load succeeds.
            logger.warning("graphapp: history not loaded: %s: %s", type(exc).__name__, exc)
            return
        for point in points:
            timeline.add(point)
        timeline.loaded = True

    async def _replay(self, after: int) -> str:
        """The changes logged after ``after`` up to the latest snapshot (the
        ``change`` event's data, ``""`` for none), or a gap when the database
        cannot tell; shared by every stream asking the same."""
        upto = self.latest_version
        if after == upto:
            return ""
        key = (after, upto)
        reading = self._replays.get(key)
        if reading is None:
            if len(self._replays) >= MAX_REPLAYS:
                self._replays.clear()
            reading = asyncio.wrap_future(snapshots.worker.submit(replay.missed, after, upto))
            self._replays[key] = reading
        try:
            async with asyncio.timeout(get_config()["VERIFY_TIMEOUT"]):
                return await asyncio.shield(reading)
        except (TimeoutError, DatabaseError, ValueError) as exc:
            # ValueError: a logged row that does not decode (written by hand).
            self._replays.pop(key, None)
            logger.warning("graphapp: missed changes not read: %s: %s", type(exc).__name__, exc)
            return replay.gap(upto)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self._awaiting_history.discard(subscriber)
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

    def recheck(self, message: dict[str, Any]) -> None:
        """Check again the streams a change of access names (graphapp.revalidate)."""
        recheck = Recheck.parse(message)
        if recheck is None:
            logger.warning("graphapp: ignored a malformed recheck message: %.200r", message)
        elif self.running:
            self._revalidator.ask(recheck)

    def _end(self, ending: list[Subscriber], final: Callable[[], bytes] | None = None) -> int:
        self.subscribers.difference_update(ending)
        self._awaiting_history.difference_update(ending)
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
        self._revalidator.stop()
        for task in self._tasks:
            task.cancel()
        # A load in progress finishes for the subscribers awaiting it; nobody
        # else sees its result (_accept ignores it while not running).
        self._tasks, self._loading, self._reading, self._refreshing = [], None, None, None
        self.timeline, self._history_loading, self._replays = history.Timeline(), None, {}
        self._awaiting_history.clear()
        # What we held may be stale by the time someone subscribes again.
        self.latest, self.latest_version, self.latest_state = None, -1, ""
        self.stale, self.joined = False, False

    def _on_joined(self, joined: bool) -> None:
        self.joined = joined

    # -- messages ------------------------------------------------------------------

    def receive(self, message: dict[str, Any]) -> None:
        """One message from the transport (in the hub's loop)."""
        kind = message.get("type")
        if kind == wire.REVOKE:
            self.revoke(message.get("session"))
            return
        if kind == wire.RECHECK:
            self.recheck(message)
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
            self._replays.clear()  # they ended at an older version
            self._add_point(message)
            if message["state"] != self.latest_state:
                frame = wire.stats_frame(version, message["data"])
                self.latest, self.latest_state = frame, message["state"]
                for subscriber in self.subscribers:
                    subscriber.offer(frame)
                if self._awaiting_history and self.timeline.loaded:
                    for subscriber in self._awaiting_history:
                        subscriber.offer_history(self._history())
                    self._awaiting_history.clear()
            self.latest_version = version
        changes = message.get("changes")
        if changes is not None:
            # Even when the statistics told nothing new (a node created and
            # deleted within one window, or a snapshot this hub computed first),
            # the changes do: each publication's come once, whatever its order.
            self._accept_changes(version, changes["data"])

    def _add_point(self, message: StatsMessage) -> None:
        try:
            point = history.Point.of(json.loads(message["data"]))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("graphapp: a snapshot without the fields of a history point: %r", exc)
            return
        self.timeline.add(point)

    def _accept_changes(self, version: int, data: str) -> None:
        try:
            changes = ChangeBatch.decode(data, get_config()["CHANGE_LIMIT"])
        except ValueError as exc:
            logger.warning("graphapp: ignored a malformed change message: %s", exc)
            return
        self._replays.clear()  # a replay read before these were logged lacks them
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
        # A version no publication brought (a writer outside Django) is history too.
        snapshots.worker.submit(history.record, snapshot)
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
