"""A versioned snapshot: the statistics and the graph's version, read together.

Both are read in one transaction (graphapp.stats.one_snapshot), so a
snapshot's ``version`` names exactly the state its numbers describe, in every
process alike. The publisher and the hubs compute them on one worker thread
per process (:data:`worker`), which keeps its database connection between them.
"""

from __future__ import annotations

import datetime
import logging
import time

from django.db import DEFAULT_DB_ALIAS, DatabaseError

from graphapp import history, ledger, replay, versions
from graphapp.durations import Durations
from graphapp.stats import compute_stats, one_snapshot
from graphapp.types import Snapshot
from graphapp.worker import DatabaseWorker

logger = logging.getLogger(__name__)

#: Where this process computes snapshots and reads the graph's version.
worker = DatabaseWorker("graphapp-snapshots")

# Databases that keep no version (neither PostgreSQL nor SQLite): increasing in
# this process, ordered only roughly across processes (milliseconds since the epoch).
_last_fallback = 0


def _fallback_version() -> int:
    global _last_fallback
    _last_fallback = max(_last_fallback + 1, time.time_ns() // 1_000_000)
    return _last_fallback


#: Snapshots computed in this process (publications and hubs alike; for health).
taken = 0
#: How long each that the database answered took (for graphapp.metrics).
durations = Durations()


def take() -> Snapshot:
    """Compute the statistics and read their version (queries the database).

    Inside a transaction of the caller's, its isolation decides: at READ
    COMMITTED the version and the numbers may describe different states.
    """
    global taken
    taken += 1
    started = time.perf_counter()
    with one_snapshot():
        version = versions.read()
        stats = compute_stats()
    durations.observe(time.perf_counter() - started)
    at = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    return {
        "type": "update",
        **stats,
        "version": _fallback_version() if version is None else version,
        "at": at,
    }


def current_version() -> int | None:
    """The graph's version now; None where the database keeps none."""
    return versions.read()


def tidy() -> None:
    """Fold what writers appended (PostgreSQL: the degree ledger's and the
    version's pending rows) and prune history and the change log; off the path
    from a commit to the streams."""
    for fold in (ledger.compact, versions.fold, history.prune, replay.prune):
        try:
            fold(DEFAULT_DB_ALIAS)
        except DatabaseError as exc:
            # The numbers stay right (they read the pending rows too); the next
            # publication folds them.
            logger.warning(
                "graphapp: %s not folded: %s: %s", fold.__module__, type(exc).__name__, exc
            )
