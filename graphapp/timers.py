"""The publisher's two clocks, each a small object of its own (tested alone).

Both take the time as an argument (``time.monotonic()`` in the publisher), so
they hold no thread, no sleep and no wall clock.
"""

from __future__ import annotations


class Window:
    """At most one start per ``length`` seconds: a burst of requests costs one
    computation per window, and the first request after a quiet spell starts at once."""

    __slots__ = ("_last", "length")

    def __init__(self, length: float) -> None:
        self.length = length
        self._last: float | None = None

    def wait(self, now: float) -> float:
        """Seconds until the next start may be."""
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.length - now)

    def start(self, now: float) -> None:
        self._last = now


class Backoff:
    """When to try again after failures: ``first`` seconds, doubling up to ``last``."""

    __slots__ = ("_due", "failures", "first", "last")

    def __init__(self, first: float, last: float) -> None:
        self.first = first
        self.last = last
        self.failures = 0
        self._due: float | None = None

    def failed(self, now: float) -> float:
        """Record a failure; returns when the next try is due."""
        self.failures += 1
        delay = min(self.last, self.first * 2 ** min(self.failures - 1, 32))
        self._due = now + delay
        return self._due

    def succeeded(self) -> None:
        self.failures = 0
        self._due = None

    def remaining(self, now: float) -> float | None:
        """Seconds until a try is due (0 when overdue); None when none is."""
        return None if self._due is None else max(0.0, self._due - now)

    def due(self, now: float) -> bool:
        return self._due is not None and now >= self._due
