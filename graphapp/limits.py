"""How many streams this process holds, in all and per user, and the refusals beyond.

A stream takes a :class:`Slot` before its response starts and gives it back when
it ends, however it ends: the stream's own ``finally``, the response's
``close()`` (which the ASGI handler calls even when the body never started), or,
last, the garbage collector. Releasing twice is harmless.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Final

from graphapp.conf import get_config

#: Why a connect is refused: the process shuts down, the user holds
#: MAX_CONNECTIONS_PER_USER streams, the process holds MAX_CONNECTIONS.
REFUSALS: Final = ("draining", "per_user", "per_process")


class StreamRefused(Exception):
    """No slot: too many streams in this process, or for this user, or shutting down."""

    def __init__(self, status: int, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class Slot:
    """One open stream's place in the count."""

    __slots__ = ("_held", "_limits", "_user")

    def __init__(self, limits: StreamLimits, user: Hashable) -> None:
        self._limits = limits
        self._user = user
        self._held = True

    def release(self) -> None:
        with self._limits.lock:
            if not self._held:
                return
            self._held = False
            self._limits.release_locked(self._user)


class StreamLimits:
    """The open streams of this process (released from any thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total = 0
        self.per_user: Counter[Hashable] = Counter()
        self.draining = False
        # Connects refused so far, by reason (every reason present from the start).
        self.refused: Counter[str] = Counter(dict.fromkeys(REFUSALS, 0))
        # Called (under the lock, from any thread) when the last stream ends.
        self.on_empty: Callable[[], object] | None = None

    def acquire(self, user: Hashable) -> Slot:
        """A slot for one more stream of ``user``; raises StreamRefused."""
        config = get_config()
        # Browsers wait at least their retry delay; tell them no less.
        retry_after = max(1, math.ceil(config["RETRY"] / 1000))
        with self.lock:
            if self.draining:
                self.refused["draining"] += 1
                raise StreamRefused(503, "This server process is shutting down.", 1)
            if self.per_user[user] >= config["MAX_CONNECTIONS_PER_USER"]:
                self.refused["per_user"] += 1
                raise StreamRefused(
                    429,
                    f"Too many open streams for this user "
                    f"(at most {config['MAX_CONNECTIONS_PER_USER']}); close a tab.",
                    retry_after,
                )
            if self.total >= config["MAX_CONNECTIONS"]:
                self.refused["per_process"] += 1
                raise StreamRefused(
                    503,
                    f"This server process holds its maximum of {config['MAX_CONNECTIONS']} "
                    "streams.",
                    retry_after,
                )
            self.total += 1
            self.per_user[user] += 1
        return Slot(self, user)

    def release_locked(self, user: Hashable) -> None:
        self.total -= 1
        self.per_user[user] -= 1
        if self.per_user[user] <= 0:
            del self.per_user[user]
        if self.total == 0 and self.on_empty is not None:
            self.on_empty()


stream_limits = StreamLimits()
