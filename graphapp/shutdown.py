"""Graceful shutdown: on SIGTERM (or SIGINT) end every stream first, then let the server stop.

Neither daphne nor uvicorn ends a response that never ends by itself: daphne
drops the connections, uvicorn waits for them (for ever, without
``--timeout-graceful-shutdown``). So graphapp puts its own handler in front of
the server's: it tells every open stream to reconnect soon (a ``reconnect``
event whose ``retry:`` is at most one second, spread so that browsers do not
all come back in the same instant) and ends it cleanly, answers a new stream
with that event alone, waits until the streams are gone or ``SHUTDOWN_TIMEOUT``
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
RECONNECT_WITHIN_MS: Final = 1000

# What signal.getsignal() returns: a Python handler, SIG_DFL/SIG_IGN, or None.
Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | None

_installed = False


def final_frame() -> bytes:
    """Come back within a second: the last event of each stream the drain ends,
    and the whole answer to a stream asked for while it lasts (a 503 would stop
    every standard EventSource for good)."""
    retry = get_config()["RETRY"]
    return reconnect_frame(random.randint(0, min(retry, RECONNECT_WITHIN_MS)), "shutdown")


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
    loop = asyncio.get_running_loop()
    closed = sum(hub.close_all(final_frame) for hub in all_hubs())
    timeout = get_config()["SHUTDOWN_TIMEOUT"]
    logger.info(
        "graphapp: %s: ending %d stream(s), waiting up to %.1f s",
        signal.Signals(signum).name,
        closed,
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
