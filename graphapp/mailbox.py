"""One open stream's mailbox: what its hub offered and the stream has not sent yet.

It holds at most the latest snapshot, one batch of changes (pending change
messages merge into it, past ``CHANGE_LIMIT`` into counts per kind) and the
latest status, so a slow client never delays the others and never holds more;
and, for a new stream, the history and the changes it missed
(graphapp.history, graphapp.replay), each once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from graphapp.changes import ChangeBatch
from graphapp.wire import change_frame


class StreamClosed(Exception):
    """The hub ended this stream (a shutdown, a logout)."""


class Subscriber:
    """The latest snapshot not yet sent, the changes not yet sent merged into
    one batch, and the latest status; nothing more."""

    # One stream's task waits on it at a time: a flag and that task's future
    # rather than an asyncio.Event, whose dict and deque weigh 1.1 KB (a fifth
    # of what graphapp adds to an open request, bench/).
    __slots__ = (
        "_changes",
        "_closed",
        "_frame",
        "_history",
        "_missed",
        "_ready",
        "_status",
        "_waiter",
        "final",
        "recheck",
        "replayed_through",
        "session",
        "session_key",
        "user",
    )

    def __init__(
        self,
        session: str = "",
        user: str = "",
        session_key: str | None = None,
        recheck: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.session = session  # graphapp.revoke.session_digest() of its session
        # Whose stream it is (a pk as a string, "" for none) and the session to
        # check again when a change of access names either (graphapp.revalidate).
        self.user = user
        self.session_key = session_key
        # Its own check, for a stream no session vouches for (a user set by
        # the project's middleware, graphapp.access.Admission).
        self.recheck = recheck
        self._frame: bytes | None = None
        self._changes: tuple[int, ChangeBatch, bytes] | None = None
        self._status: bytes | None = None
        self._history: bytes | None = None
        self._missed: bytes | None = None
        # Changes up to this version came in the replay; a late live message
        # of one of them (another process's, overtaken) is not sent again.
        self.replayed_through = -1
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
        if version <= self.replayed_through:
            return
        if self._changes is not None:
            merged = ChangeBatch(changes.limit)
            merged.merge(self._changes[1])
            merged.merge(changes)
            changes, frame = merged, change_frame(merged.encode(version))
        self._changes = (version, changes, frame)
        self._wake()

    def offer_history(self, frame: bytes) -> None:
        self._history = frame
        self._wake()

    def offer_missed(self, version: int, frame: bytes) -> None:
        """The changes missed up to ``version``, framed; sent before live ones."""
        self.replayed_through = version
        self._missed = frame
        self._wake()

    def offer_status(self, frame: bytes) -> None:
        self._status = frame  # only the latest status matters
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
        # The snapshot first (it already counts the changes), then the history
        # it ends, the changes missed before the live ones, and the status last
        # (it speaks of the snapshot).
        parts = (self._frame, self._history, self._missed, self._changes_frame(), self._status)
        self._frame = self._history = self._missed = self._changes = self._status = None
        return b"".join(part for part in parts if part) or None

    def _changes_frame(self) -> bytes | None:
        return self._changes[2] if self._changes is not None else None

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
