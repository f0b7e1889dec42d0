"""Graceful shutdown: on SIGTERM (or SIGINT) end every stream first, then let the server stop.

Neither daphne nor uvicorn ends a response that never ends by itself: daphne
drops the connections, uvicorn waits for them (for ever, without
``--timeout-graceful-shutdown``). So graphapp puts its own handler in front of
the server's: it tells every open stream when to reconnect (a ``reconnect``
event whose ``retry:`` is at least a second, so that while no process listens
each client tries about once a second, and spread beyond that so that the
streams come back at about ``RECONNECT_RATE`` per second rather than all in
the same instant) and ends it cleanly, answers a new stream with that event
alone, waits until the streams are gone or ``SHUTDOWN_TIMEOUT``
passes, and only then calls the server's own handler. A second signal goes straight to the server.

The handler is installed by the first stream, from the thread that runs the
server's event loop (signal handlers can only be set from the main thread);
elsewhere, and with ``SHUTDOWN_TIMEOUT`` 0, the signals are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import random
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Final, TypeAlias

from graphapp.conf import get_config
from graphapp.hubs import all_hubs
from graphapp.limits import stream_limits
from graphapp.wire import reconnect_frame

logger = logging.getLogger(__name__)

SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
#: The least a drained stream's client waits before each attempt to connect
#: again: a restart costs it about one attempt a second while nothing listens.
RECONNECT_AFTER_MS: Final = 1000
#: The least spread of those reconnects beyond RECONNECT_AFTER_MS.
MIN_SPREAD_MS: Final = 1000

# What signal.getsignal() returns: a Python handler, SIG_DFL/SIG_IGN, or None.
Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | None

_installed = False


def spread_ms(streams: int) -> int:
    """Milliseconds to spread ``streams`` reconnects over, so that they arrive
    at about ``RECONNECT_RATE`` per second."""
    return max(MIN_SPREAD_MS, math.ceil(streams * 1000 / get_config()["RECONNECT_RATE"]))


def final_frame(spread: int = MIN_SPREAD_MS) -> bytes:
    """Come back after RECONNECT_AFTER_MS and at most ``spread`` ms more: the
    last event of each stream the drain ends, and the whole answer to a stream
    asked for while it lasts (a 503 would stop every standard EventSource for
    good)."""
    return reconnect_frame(RECONNECT_AFTER_MS + random.randint(0, spread), "shutdown")


def come_back_frame() -> bytes:
    """:func:`final_frame` for a stream asked for during the drain: spread like
    the drained ones (they are most of who asks)."""
    return final_frame(_drain_spread_ms)


_drain_spread_ms = MIN_SPREAD_MS


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Put graphapp's handler in front of the server's, once per process."""
    global _installed
    if _installed or get_config()["SHUTDOWN_TIMEOUT"] <= 0:
        return
    if threading.current_thread() is not threading.main_thread():
        logger.debug("graphapp: not in the main thread, SIGTERM is left to the server")
        return
    for signum in SIGNALS:
        previous = signal.getsignal(signum)
        if previous == signal.SIG_IGN or previous is None:
            # Ignored (a background job's SIGINT) must stay ignored: nothing
            # would ever stop the process after a drain. None: a handler set
            # outside Python, which we could not call after ours.
            continue
        signal.signal(signum, functools.partial(_on_signal, loop, previous))
    _installed = True


def _on_signal(
    loop: asyncio.AbstractEventLoop,
    previous: Handler,
    signum: int,
    frame: FrameType | None,
) -> None:
    if stream_limits.draining or loop.is_closed():
        _chain(previous, signum, frame)  # asked twice: no more waiting
        return
    stream_limits.draining = True
    loop.call_soon_threadsafe(_start_drain, previous, signum, frame)


def _start_drain(previous: Handler, signum: int, frame: FrameType | None) -> None:
    task = asyncio.ensure_future(_drain(previous, signum, frame))
    _draining_tasks.add(task)
    task.add_done_callback(_draining_tasks.discard)


_draining_tasks: set[asyncio.Future[None]] = set()


async def _drain(previous: Handler, signum: int, frame: FrameType | None) -> None:
    global _drain_spread_ms
    loop = asyncio.get_running_loop()
    hubs = all_hubs()
    _drain_spread_ms = spread_ms(sum(len(hub.subscribers) for hub in hubs))
    closed = sum(hub.close_all(come_back_frame) for hub in hubs)
    timeout = get_config()["SHUTDOWN_TIMEOUT"]
    logger.info(
        "graphapp: %s: ending %d stream(s), back within %.1f s, waiting up to %.1f s",
        signal.Signals(signum).name,
        closed,
        (RECONNECT_AFTER_MS + _drain_spread_ms) / 1000,
        timeout,
    )
    empty = asyncio.Event()
    with stream_limits.lock:
        stream_limits.on_empty = functools.partial(loop.call_soon_threadsafe, empty.set)
        if stream_limits.total == 0:
            empty.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(empty.wait(), timeout)
    if stream_limits.total:
        logger.warning("graphapp: %d stream(s) still open at shutdown", stream_limits.total)
    _chain(previous, signum, frame)


def _chain(previous: Handler, signum: int, frame: FrameType | None) -> None:
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    # Not reached for SIG_IGN or None: install() leaves those signals alone.
