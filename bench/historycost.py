"""Scenario 9: what history and the change log cost.

Run as ``python -m bench.historycost ROWS REPEATS`` with the benchmark site's
environment on a migrated database; prints JSON. Times one publication's
bookkeeping (a history point, a change-log row: what the publisher adds to each
publication), then fills a day of history at one snapshot per second (ROWS
points) and times what a process does once when its first stream connects: the
history read from the table, chosen down to ``HISTORY_POINTS``. Reports the
size of the history event a stream then gets (the same bytes for every stream).
"""

from __future__ import annotations

import datetime
import json
import statistics
import sys
import time
from typing import TYPE_CHECKING

import django

if TYPE_CHECKING:
    from graphapp.types import Snapshot


def snapshot(version: int, at: datetime.datetime) -> Snapshot:
    # A graph of a million nodes: the widest numbers a point carries.
    return {
        "type": "update",
        "version": version,
        "at": at.isoformat(timespec="milliseconds"),
        "nodes": 1_000_000 + version % 1000,
        "edges": 5_000_000 + version % 1000,
        "avg_entanglement": 0.5,
        "tiers": {"HOT": 200_123, "WARM": 380_456, "COLD": 419_421 + version % 1000},
        "types": {
            "FACT": 210_001,
            "CONCEPT": 211_002,
            "CODE": 204_003,
            "DREAM": 178_004,
            "ENTITY": 196_990 + version % 1000,
        },
    }


def main() -> None:
    django.setup()
    from graphapp import history, replay
    from graphapp.changes import ChangeBatch, change
    from graphapp.models import HistoryPoint

    rows, repeats = int(sys.argv[1]), int(sys.argv[2])
    now = datetime.datetime.now(datetime.UTC)
    # One publication's bookkeeping, each its own transaction as in the publisher.
    batch = ChangeBatch.of(20, [change("created", 1, "FACT", "HOT")]).encode(1)
    started = time.perf_counter()
    for version in range(1, 1001):
        history.record(snapshot(version, now))
    record_us = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    for version in range(1, 1001):
        replay.record(version, batch)
    log_us = (time.perf_counter() - started) * 1000
    HistoryPoint.objects.all().delete()
    # A day at one point a second, written in bulk.
    start = now - datetime.timedelta(days=1)
    points = []
    for second in range(rows):
        point = history.Point.of(snapshot(second + 1, start + datetime.timedelta(seconds=second)))
        points.append(HistoryPoint(**point._asdict()))
    HistoryPoint.objects.bulk_create(points, batch_size=5000)
    load_ms = []
    chosen: list[history.Point] = []
    for _ in range(repeats):
        started = time.perf_counter()
        chosen = history.load()
        load_ms.append((time.perf_counter() - started) * 1000)
    event = history.encode(chosen)
    print(
        json.dumps(
            {
                "rows": rows,
                "record_us": round(record_us, 1),
                "log_us": round(log_us, 1),
                "load_ms": [round(ms, 1) for ms in load_ms],
                "load_ms_median": round(statistics.median(load_ms), 1),
                "points": len(chosen),
                "event_bytes": len(event.encode()),
            }
        )
    )


if __name__ == "__main__":
    main()
