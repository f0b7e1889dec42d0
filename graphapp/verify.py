"""What a hub's look at the database tells it to do: the rule behind convergence.

Every ``VERIFY_INTERVAL`` seconds a process with open streams reads the graph's
version from the database (one row; graphapp.versions) and compares it with
the version its streams have. Messages through the layer normally bring a
newer version within a coalescing window, so a version seen ahead is given one
interval to arrive; one that has not arrived by the next look (a message lost,
a broker hung or restarted, a writer outside Django, a publisher that died)
makes the hub compute the snapshot itself. A hub whose database has gone back
(a restore) takes the database's state too. Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum


class Verdict(enum.Enum):
    CONFIRMED = "confirmed"  # the streams have what the database holds
    WAIT = "wait"  # the database is ahead; the layer has an interval to bring it
    # (confirms nothing: a stale hub stays stale until it has caught up)
    REFRESH = "refresh"  # compute the snapshot here, now


class Verifier:
    """Remembers the version seen ahead at the previous look."""

    __slots__ = ("_ahead",)

    def __init__(self) -> None:
        self._ahead: int | None = None

    def observe(self, database: int | None, streams: int) -> Verdict:
        """``database``: the version read now (None where the database keeps
        none: then only a fresh snapshot can tell); ``streams``: the version the
        hub's streams have (-1 for none)."""
        if database is None or database < streams or streams < 0:
            self._ahead = None
            return Verdict.REFRESH
        if database == streams:
            self._ahead = None
            return Verdict.CONFIRMED
        if self._ahead is not None and streams < self._ahead:
            # Kept: if the refresh fails, the next look refreshes again at once.
            self._ahead = database
            return Verdict.REFRESH
        self._ahead = database
        return Verdict.WAIT
