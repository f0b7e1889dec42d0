"""How long something took, tallied: a count per bucket and a sum, from any thread.

Plain Python with no dependency, so that the places that measure (the
publisher's lag, a snapshot's computation) need nothing installed;
graphapp.metrics reads the tallies at each scrape, in Prometheus' histogram form.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Sequence
from typing import Final

#: Upper bounds in seconds: from a snapshot of a small graph on SQLite to a
#: statistics query at millions of nodes, or a publication behind a slow layer.
BOUNDS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Durations:
    """Observations of one duration, in fixed buckets (as a Prometheus histogram)."""

    def __init__(self, bounds: Sequence[float] = BOUNDS) -> None:
        self.bounds = tuple(bounds)
        self._lock = threading.Lock()
        self._counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        """Count one duration of ``seconds``."""
        index = bisect.bisect_left(self.bounds, seconds)  # the first bound >= seconds
        with self._lock:
            self._counts[index] += 1
            self._sum += seconds

    def read(self) -> tuple[list[int], float]:
        """The cumulative count at each bound (and last, of all), and the sum."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        return list(itertools.accumulate(counts)), total
