"""Per-process fan-out of the group's snapshots to every open stream, and SSE framing.

One :class:`Hub` per process (per event loop) holds the only subscription to the
channel-layer group: a single reader task that receives each message, frames it
once as SSE bytes, and hands the same bytes to every :class:`Subscriber`. A
subscriber keeps only the latest snapshot and one batch of changes (pending
change messages merge into it, and past ``CHANGE_LIMIT`` into counts per kind),
so a slow client never delays the others and never holds more than that. The
hub leaves the group when its last subscriber goes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connections

from graphapp import shutdown
from graphapp.changes import ChangeBatch
from graphapp.conf import get_config
from graphapp.publish import channel_layer, encode, publisher, state_of
from graphapp.revoke import REVOKE
from graphapp.types import ChannelLayer, Snapshot

logger = logging.getLogger(__name__)

HEARTBEAT_FRAME: Final = b": heartbeat\n\n"
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")


def sse_frame(
    data: str | None = None,
    *,
    event: str | None = None,
    id: int | str | None = None,
    retry: int | None = None,
) -> bytes:
    """One Server-Sent Events message; ``data`` may span lines."""
    lines: list[str] = []
    if retry is not None:
        lines.append(f"retry: {retry}")
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    if data is not None:
        # SSE ends a line at CRLF, LF or CR: each becomes its own data line.
        lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(lines) + "\n\n").encode()


def stats_frame(version: int, data: str) -> bytes:
    return sse_frame(data, event="stats", id=version)


def change_frame(version: int, data: str) -> bytes:
    return sse_frame(data, event="change", id=version)


class StreamClosed(Exception):
    """The hub stopped serving its subscribers (its subscription failed)."""


class Subscriber:
    """One open stream's mailbox: the latest snapshot not yet sent, and the
    changes not yet sent merged into one batch; nothing more."""

    # One stream's task waits on it at a time: a flag and that task's future
    # rather than an asyncio.Event, whose dict and deque weigh 1.1 KB (a fifth
    # of what graphapp adds to an open request, bench/).
    __slots__ = ("_changes", "_closed", "_frame", "_ready", "_waiter", "final", "session")

    def __init__(self, session: str = "") -> None:
        self.session = session  # graphapp.revoke.session_digest() of its session
        self._frame: bytes | None = None
        self._changes: tuple[int, ChangeBatch, bytes] | None = None
        self._ready = False  # something to send, or closed
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.final = b""  # what the stream sends last when the hub closes it

    def _wake(self) -> None:
        self._ready = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def offer(self, frame: bytes) -> None:
        self._frame = frame  # replaces an unsent older snapshot
        self._wake()

    def offer_changes(self, version: int, changes: ChangeBatch, frame: bytes) -> None:
        """Changes framed once by the hub; merged with unsent ones (then framed
        for this subscriber alone) so that a slow reader holds one bounded batch."""
        if self._changes is not None:
            merged = ChangeBatch(changes.limit)
            merged.merge(self._changes[1])
            merged.merge(changes)
            changes, frame = merged, change_frame(version, merged.encode(version))
        self._changes = (version, changes, frame)
        self._wake()

    def close(self, final: bytes = b"") -> None:
        self._closed = True
        self.final = final
        self._wake()

    def take(self) -> bytes | None:
        """What is waiting now, if anything, without waiting."""
        if self._closed:
            return None
        self._ready = False
        return self._pending()

    def _pending(self) -> bytes | None:
        frame, self._frame = self._frame, None
        if self._changes is not None:
            # The snapshot first: it already counts these changes.
            frame = (frame or b"") + self._changes[2]
            self._changes = None
        return frame

    async def wait(self, heartbeat: float) -> bool:
        """Whether something waits, after at most ``heartbeat`` seconds; takes nothing.

        Raises StreamClosed when the hub closed this subscriber.
        """
        if not self._ready:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(heartbeat):
                    await self._waiter
            except TimeoutError:
                return False
            finally:
                self._waiter = None
        if self._closed:
            raise StreamClosed
        return True

    async def next(self, heartbeat: float) -> bytes | None:
        """The next frame, or None when ``heartbeat`` seconds pass first.

        Raises StreamClosed when the hub closed this subscriber.
        """
        if not await self.wait(heartbeat):
            return None
        self._ready = False
        return self._pending()


def _snapshot_without_connection() -> Snapshot:
    # Runs in the thread of the request that started the load, which lives as
    # long as its stream: leave no database connection behind in it.
    try:
        return publisher.snapshot()
    finally:
        connections.close_all()


class Hub:
    """The process's single subscription to the group, fanned out in memory."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.subscribers: set[Subscriber] = set()
        self.latest_version = -1
        self.latest_state = ""
        self.latest: bytes | None = None
        self._reader: asyncio.Task[None] | None = None
        self._joined: asyncio.Future[None] | None = None
        self._loading: asyncio.Task[None] | None = None

    @property
    def subscribed(self) -> bool:
        return self._reader is not None

    async def subscribe(self, session: str = "") -> Subscriber:
        """Join the group if needed, then return a subscriber holding the latest snapshot.

        ``session`` (a digest, see graphapp.revoke) lets a logout end it at once.
        """
        subscriber = Subscriber(session)
        self.subscribers.add(subscriber)
        try:
            if self._reader is None:
                self._start()
            assert self._joined is not None
            await asyncio.shield(self._joined)
            if self.latest is None:
                if self._loading is None or self._loading.done():
                    self._loading = asyncio.create_task(self._load())
                await asyncio.shield(self._loading)
        except BaseException:
            # Cancelled (the client left) or failed while waiting: leave nothing.
            self.unsubscribe(subscriber)
            raise
        if self.latest is not None:
            subscriber.offer(self.latest)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        if not self.subscribers:
            self._stop()

    def _start(self) -> None:
        self._joined = self.loop.create_future()
        self._reader = asyncio.create_task(self._read(), name="graphapp-hub-reader")
        publisher.deliver_on(self.loop)

    def _stop(self) -> None:
        publisher.deliver_on(None)
        if self._reader is not None:
            self._reader.cancel()
        # A load in progress finishes for the subscribers awaiting it; _accept
        # then ignores its result.
        self._reader = self._joined = self._loading = None
        # What we held may be stale by the time someone subscribes again.
        self.latest, self.latest_version, self.latest_state = None, -1, ""

    async def _load(self) -> None:
        # One query for every stream that connects before the first message:
        # a thousand reconnecting browsers cost one computation, not a thousand.
        snapshot = await sync_to_async(_snapshot_without_connection)()
        self._accept(snapshot["version"], encode(snapshot), state_of(snapshot))

    def _accept(self, version: int, data: str, state: str) -> None:
        # Older than what the clients have, or the same statistics again (a
        # publication that a fresh load already covered): nothing to tell them.
        if not self.subscribed or version < self.latest_version or state == self.latest_state:
            return
        frame = stats_frame(version, data)
        self.latest, self.latest_version, self.latest_state = frame, version, state
        for subscriber in self.subscribers:
            subscriber.offer(frame)

    def _accept_changes(self, version: int, data: str) -> None:
        if not self.subscribed:
            return
        try:
            changes = ChangeBatch.decode(data, get_config()["CHANGE_LIMIT"])
        except ValueError as exc:
            logger.warning("graphapp: ignored a malformed change message: %s", exc)
            return
        frame = change_frame(version, data)
        for subscriber in self.subscribers:
            subscriber.offer_changes(version, changes, frame)

    def _on_message(self, message: dict[str, Any]) -> None:
        if message.get("type") == REVOKE:
            self._revoke(message.get("session"))
            return
        version, data, state = message.get("version"), message.get("data"), message.get("state")
        if (
            message.get("type") != "graph.stats"
            or not isinstance(version, int)
            or not isinstance(data, str)
            or not isinstance(state, str)
        ):
            logger.warning("graphapp: ignored a malformed message on the group: %.200r", message)
            return
        self._accept(version, data, state)
        changes = message.get("changes")
        if changes is not None:
            # Even when the statistics told nothing new (a node created and deleted
            # within one window), the changes do.
            self._on_changes(changes)

    def _revoke(self, session: object) -> None:
        """End the streams of a session that logged out (see graphapp.revoke)."""
        if not isinstance(session, str) or not session:
            return
        ended = self._end([s for s in self.subscribers if s.session == session])
        if ended:
            logger.info("graphapp: %d stream(s) ended by their session's logout", ended)

    def _on_changes(self, changes: Any) -> None:
        version, data = (
            (changes.get("version"), changes.get("data")) if isinstance(changes, dict) else (0, 0)
        )
        if not isinstance(version, int) or not isinstance(data, str):
            logger.warning("graphapp: ignored malformed changes on the group: %.200r", changes)
            return
        self._accept_changes(version, data)

    async def _read(self) -> None:
        layer = channel_layer()
        joined = self._joined
        assert joined is not None
        channel: str | None = None
        group = get_config()["GROUP"]
        try:
            if layer is None:
                raise LookupError(f"no channel layer {get_config()['CHANNEL_LAYER']!r}")
            async with asyncio.timeout(get_config()["SEND_TIMEOUT"]):
                channel = await layer.new_channel()
                await layer.group_add(group, channel)
            joined.set_result(None)
            rejoin = asyncio.create_task(self._rejoin(layer, group, channel))
            try:
                while True:
                    self._on_message(await layer.receive(channel))
            finally:
                rejoin.cancel()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - backends raise their own errors
            logger.error(
                "graphapp: subscription to group %r failed, closing %d stream(s): %s: %s",
                group,
                len(self.subscribers),
                type(exc).__name__,
                exc,
            )
            if not joined.done():
                joined.set_exception(StreamClosed())
                joined.exception()  # retrieved here; waiting subscribers get it too
            self._fail()
        finally:
            if not joined.done():
                joined.cancel()
            if layer is not None and channel is not None:
                await self._leave(layer, group, channel)

    async def _rejoin(self, layer: ChannelLayer, group: str, channel: str) -> None:
        """Join again before the layer's ``group_expiry`` drops us.

        Channels' layers forget a group member after ``group_expiry`` seconds
        (default a day) even while its connection is alive; a wall screen stays
        open for longer. Joining again renews the membership.
        """
        expiry = getattr(layer, "group_expiry", None)
        if not isinstance(expiry, int | float) or expiry <= 0:
            return
        while True:
            await asyncio.sleep(expiry / 2)
            try:
                await layer.group_add(group, channel)
            except Exception as exc:  # noqa: BLE001 - backends raise their own errors
                # The reader sees the same outage and closes the streams.
                logger.warning(
                    "graphapp: could not renew membership of group %r: %s: %s",
                    group,
                    type(exc).__name__,
                    exc,
                )

    async def _leave(self, layer: ChannelLayer, group: str, channel: str) -> None:
        try:
            async with asyncio.timeout(get_config()["SEND_TIMEOUT"]):
                await layer.group_discard(group, channel)
        except Exception as exc:  # noqa: BLE001 - backends raise their own errors
            logger.warning(
                "graphapp: could not leave group %r: %s: %s", group, type(exc).__name__, exc
            )

    def _fail(self) -> None:
        self._reader = None  # ending by itself: _stop must not cancel it
        self._end(list(self.subscribers))

    def close_all(self, final: Callable[[], bytes]) -> int:
        """End every stream, each sending ``final()`` last; returns how many."""
        return self._end(list(self.subscribers), final)

    def _end(self, ending: list[Subscriber], final: Callable[[], bytes] | None = None) -> int:
        """Close these streams (each sending ``final()`` last, if given), and
        leave the group when none is left; returns how many."""
        self.subscribers.difference_update(ending)
        for subscriber in ending:
            subscriber.close(final() if final is not None else b"")
        if not self.subscribers:
            self._stop()
        return len(ending)


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def get_hub() -> Hub:
    """The hub of the running event loop (created on first use)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        for stale in [other for other in _hubs if other.is_closed()]:
            del _hubs[stale]
        hub = _hubs[loop] = Hub(loop)
        shutdown.install(loop)
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


async def event_stream(
    retry: int,
    heartbeat: float,
    still_allowed: Callable[[], Awaitable[bool]] | None = None,
    revalidate_every: float = 60.0,
    min_interval: float = 0.0,
    on_end: Callable[[], None] | None = None,
    session: str = "",
) -> AsyncIterator[bytes]:
    """The body of one SSE response: latest snapshot at once, then every update.

    Subscribes before the first yield and always unsubscribes (and calls
    ``on_end``): on the client's disconnect Django cancels the task and
    CancelledError passes through here.
    Every ``revalidate_every`` seconds it asks ``still_allowed()`` and ends the
    stream when the answer is no (a logged-out or expired session, a revoked
    permission): the browser reconnects, gets 403 and stops. A logout of
    ``session`` ends it at once (graphapp.revoke).
    Updates leave at most once per ``min_interval`` seconds, the latest one
    then: the server's write buffer for a client that stops reading (daphne
    does not apply back-pressure) grows with time, never with the rate of writes.
    """
    hub = get_hub()
    subscriber: Subscriber | None = None
    loop = asyncio.get_running_loop()
    # The first check somewhere in the second half of the interval: streams
    # opened together (a restart's reconnecting browsers) do not all check in
    # the same instant, every interval after.
    next_check = loop.time() + revalidate_every * (0.5 + random.random() / 2)
    try:
        subscriber = await hub.subscribe(session)
        first = await subscriber.next(0.0) or b""
        yield sse_frame(retry=retry) + first
        sent = loop.time()
        while True:
            frame: bytes | None = None
            if await subscriber.wait(heartbeat):
                if (wait := sent + min_interval - loop.time()) > 0:
                    await asyncio.sleep(wait)
                # Taken only now: what arrived in the pause merges into the
                # mailbox (a newer snapshot, more changes) and nothing is lost.
                frame = subscriber.take()
                if frame is None:  # closed meanwhile
                    await subscriber.wait(0)
            if still_allowed is not None and loop.time() >= next_check:
                if not await still_allowed():
                    logger.info("graphapp: stream ended, its user may no longer read it")
                    return
                next_check = loop.time() + revalidate_every
            if frame is None:
                yield HEARTBEAT_FRAME
            else:
                yield frame
                sent = loop.time()
    except StreamClosed:
        # Ending the response makes the browser reconnect after ``retry`` ms
        # (or what the final frame says).
        logger.info("graphapp: stream closed by its hub; the client will reconnect")
        if subscriber is not None and subscriber.final:
            yield subscriber.final
    except DatabaseError as exc:
        # The first snapshot or a check could not read the database; the
        # browser reconnects, and the next attempt reads it again.
        logger.error("graphapp: stream ended on a database error: %s: %s", type(exc).__name__, exc)
    finally:
        if subscriber is not None:
            hub.unsubscribe(subscriber)
        if on_end is not None:
            on_end()
