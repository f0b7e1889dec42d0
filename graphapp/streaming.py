"""The body of one SSE response: the latest snapshot at once, then every update.

The last step of the one-way path (graphapp.publish -> transport -> hubs ->
here): a stream takes a mailbox from its loop's hub, sends what arrives in it,
a heartbeat comment while nothing does, and gives the mailbox back however it
ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable

from django.db import DatabaseError

from graphapp import shutdown
from graphapp.hubs import get_hub
from graphapp.mailbox import StreamClosed, Subscriber
from graphapp.wire import HEARTBEAT_FRAME, with_retry

logger = logging.getLogger(__name__)


async def event_stream(
    retry: int,
    heartbeat: float,
    still_allowed: Callable[[], Awaitable[bool]] | None = None,
    revalidate_every: float = 60.0,
    min_interval: float = 0.0,
    on_end: Callable[[], None] | None = None,
    session: str = "",
    last_event_id: int | None = None,
    user: str = "",
    session_key: str | None = None,
    recheck_alone: bool = False,
) -> AsyncIterator[bytes]:
    """The body of one SSE response: latest snapshot at once, then every update.

    Subscribes before the first yield and always unsubscribes (and calls
    ``on_end``): on the client's disconnect Django cancels the task and
    CancelledError passes through here.
    Every ``revalidate_every`` seconds it asks ``still_allowed()`` and ends the
    stream when the answer is no (a logged-out or expired session, a revoked
    permission): the browser reconnects, gets 403 and stops. When the database
    cannot answer within a heartbeat the stream goes on (stale, as its hub
    says) and asks again a heartbeat later. A logout of ``session`` ends it at
    once (graphapp.revoke), and a change of the access of ``user`` or
    ``session_key`` (a password, a permission, a deleted session) has its hub
    check it again at once (graphapp.revalidate): by its session, or
    ``recheck_alone``, by ``still_allowed()``. After the first snapshot
    comes the history (graphapp.history) and, for a client that reconnects
    saying it last saw ``last_event_id``, the changes it missed (graphapp.replay).
    Updates leave at most once per ``min_interval`` seconds, the latest one
    then: the server's write buffer for a client that stops reading (daphne
    does not apply back-pressure) grows with time, never with the rate of writes.
    """
    hub = get_hub()
    shutdown.install(asyncio.get_running_loop())
    subscriber: Subscriber | None = None
    loop = asyncio.get_running_loop()
    # The first check somewhere in the second half of the interval: streams
    # opened together (a restart's reconnecting browsers) do not all check in
    # the same instant, every interval after.
    next_check = loop.time() + revalidate_every * (0.5 + random.random() / 2)
    try:
        subscriber = await hub.subscribe(
            session,
            last_event_id,
            user=user,
            session_key=session_key,
            recheck=still_allowed if recheck_alone else None,
        )
        first = await subscriber.next(0.0) or b""
        yield with_retry(first, retry)
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
                allowed = await _ask(still_allowed, heartbeat)
                if allowed is False:
                    logger.info("graphapp: stream ended, its user may no longer read it")
                    return
                # No answer (the database down or slow): the stream goes on,
                # its hub says it is stale, and the check comes again a
                # heartbeat later.
                next_check = loop.time() + (revalidate_every if allowed else heartbeat)
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
    finally:
        if subscriber is not None:
            hub.unsubscribe(subscriber)
        if on_end is not None:
            on_end()


async def _ask(still_allowed: Callable[[], Awaitable[bool]], within: float) -> bool | None:
    """Whether the stream's user may still read it; None when the database
    could not tell within ``within`` seconds (the heartbeat waits for it)."""
    try:
        async with asyncio.timeout(within):
            return await still_allowed()
    except (TimeoutError, DatabaseError) as exc:
        logger.warning(
            "graphapp: a stream's access could not be checked again: %s: %s",
            type(exc).__name__,
            exc,
        )
        return None
