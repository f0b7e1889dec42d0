"""Streams checked again at once when a change of access names them (graphapp.rechecks).

A hub hands each ``graph.recheck`` it receives to its :class:`Revalidator`,
which checks the streams it names (graphapp.access.still_allowed_each: the
session and the user read again, the permission checked again) and ends those
that may no longer read; the others stream on untouched. The checks run on the
check worker, never on the event loop, ``BATCH`` sessions per trip (a stream's
connect waits for one batch at most), one check per session however many
streams it has. One pass runs at a time: rechecks that arrive meanwhile merge
into the next, so a storm of permission edits costs two passes, not one per edit.
A pass that cannot read the database leaves its streams to their periodic check
(``REVALIDATE_INTERVAL``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Final

from django.db import DatabaseError

from graphapp import access
from graphapp.conf import get_config
from graphapp.mailbox import Subscriber
from graphapp.rechecks import Recheck

logger = logging.getLogger(__name__)

#: Sessions checked in one trip to the check worker.
BATCH: Final = 50


class Revalidator:
    """One hub's rechecks: ``streams()`` are its open streams, ``end(some)``
    ends some of them."""

    def __init__(
        self,
        streams: Callable[[], Collection[Subscriber]],
        end: Callable[[list[Subscriber]], int],
    ) -> None:
        self._streams = streams
        self._end = end
        self._pending: Recheck | None = None
        self._task: asyncio.Task[None] | None = None

    def ask(self, recheck: Recheck) -> None:
        """Check again, soon, the streams ``recheck`` names (in the hub's loop)."""
        if self._pending is None:
            self._pending = Recheck()
        self._pending.merge(recheck)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="graphapp-hub-recheck")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._task, self._pending = None, None

    async def _run(self) -> None:
        while self._pending is not None:
            recheck, self._pending = self._pending, None
            try:
                await self._pass(recheck)
            except Exception:
                # Unexpected (a custom check that raised): the next pass must run.
                logger.exception("graphapp: a recheck of streams failed")

    async def _each_alone(
        self, streams: list[tuple[Subscriber, Callable[[], Awaitable[bool]]]]
    ) -> tuple[int, int]:
        """Check the streams that no session vouches for, each by its own
        check (its user loaded again); how many were checked, and ended."""
        ending = []
        for subscriber, check in streams:
            try:
                async with asyncio.timeout(get_config()["VERIFY_TIMEOUT"]):
                    allowed = await check()
            except (TimeoutError, DatabaseError) as exc:
                logger.warning(
                    "graphapp: a stream not checked again (it keeps its periodic check): %s: %s",
                    type(exc).__name__,
                    exc,
                )
                continue
            if not allowed and subscriber in self._streams():
                ending.append(subscriber)
        return len(streams), self._end(ending)

    async def _pass(self, recheck: Recheck) -> None:
        by_session: dict[str | None, list[Subscriber]] = {}
        alone: list[tuple[Subscriber, Callable[[], Awaitable[bool]]]] = []
        for subscriber in self._streams():
            if recheck.covers(subscriber.user, subscriber.session):
                if subscriber.recheck is not None:
                    alone.append((subscriber, subscriber.recheck))
                else:
                    by_session.setdefault(subscriber.session_key, []).append(subscriber)
        keys = list(by_session)
        checked, ended = await self._each_alone(alone)
        for start in range(0, len(keys), BATCH):
            batch = keys[start : start + BATCH]
            try:
                async with asyncio.timeout(get_config()["VERIFY_TIMEOUT"]):
                    verdicts = await access.still_allowed_each(batch)
            except (TimeoutError, DatabaseError) as exc:
                logger.warning(
                    "graphapp: %d session(s) not checked again (their streams keep their "
                    "periodic check): %s: %s",
                    len(batch),
                    type(exc).__name__,
                    exc,
                )
                continue
            open_now = self._streams()
            ending = [
                subscriber
                for key, allowed in zip(batch, verdicts, strict=True)
                if not allowed
                for subscriber in by_session[key]
                if subscriber in open_now
            ]
            checked += sum(len(by_session[key]) for key in batch)
            ended += self._end(ending)
        if checked:
            logger.info(
                "graphapp: %d of %d stream(s) checked again ended: their access changed",
                ended,
                checked,
            )
