"""Scenario 5: the cost graphapp adds to ``Node.save()``.

Run as ``python -m bench.writes SAVES RUNS`` with the benchmark site's
environment; prints JSON. Runs alternate between three set-ups:

* ``connected``: all of graphapp: the receivers (each save registers its
  on_commit hook, which wakes the publisher thread; that thread computes the
  statistics at most once per window, alongside the saves, as it does wherever
  someone listens: a receiver of ``graph_stats_published`` stands for the
  streams here) and the triggers that raise the graph's version
  (graphapp.versions);
* ``disconnected``: the triggers only;
* ``bare``: neither (the node table's version triggers dropped for the run).

The overhead is ``connected`` against ``bare``: everything graphapp adds. Each
save is its own transaction (autocommit), the worst case.
"""

from __future__ import annotations

import importlib
import json
import statistics
import sys
import time
from typing import Any

import django


def timed_saves(count: int) -> float:
    from graphapp.models import Node

    started = time.perf_counter()
    for index in range(count):
        Node(content=f"write {index}", node_type="FACT", momentum=(index % 100) / 100).save()
    return time.perf_counter() - started


def _version_triggers(create: bool) -> None:
    """Create or drop the node table's version triggers (migration 0005's own SQL)."""
    from django.db import connection

    migration = importlib.import_module("graphapp.migrations.0005_graph_version")
    statements = {
        "sqlite": (migration.SQLITE, migration.SQLITE_BACKWARD),
        "postgresql": (migration.POSTGRESQL, migration.POSTGRESQL_BACKWARD),
    }[connection.vendor]
    chosen = [
        sql
        for sql in statements[0 if create else 1]
        if "graphapp_version_node" in sql and "TRIGGER" in sql
    ]
    with connection.cursor() as cursor:
        for sql in chosen:
            cursor.execute(sql)


def main() -> None:
    django.setup()
    from django.db.models.signals import post_save

    from graphapp import signals
    from graphapp.models import Edge, Node
    from graphapp.publish import graph_stats_published, publisher

    count, runs = int(sys.argv[1]), int(sys.argv[2])
    post_save.disconnect(sender=Node, dispatch_uid="bench.commit")  # the harness's own hook

    def disconnect() -> None:
        for model in (Node, Edge):
            post_save.disconnect(sender=model, dispatch_uid=f"graphapp.save.{model.__name__}")

    timed_saves(min(count, 500))  # warm-up: imports, statements, the file's pages
    seconds: dict[str, list[float]] = {"connected": [], "disconnected": [], "bare": []}
    snapshots: list[int] = []
    def listener(**kwargs: object) -> None:
        pass

    for _ in range(runs):
        signals.connect()
        # Without a listener this process (in-memory layer, no stream) would
        # compute nothing at all: the cost of a server with streams is measured.
        graph_stats_published.connect(listener)
        before = publisher.snapshots
        seconds["connected"].append(timed_saves(count))
        publisher.flush(30.0)
        snapshots.append(publisher.snapshots - before)
        graph_stats_published.disconnect(listener)
        disconnect()
        seconds["disconnected"].append(timed_saves(count))
        _version_triggers(create=False)
        seconds["bare"].append(timed_saves(count))
        _version_triggers(create=True)
    connected = statistics.median(seconds["connected"])
    disconnected = statistics.median(seconds["disconnected"])
    bare = statistics.median(seconds["bare"])
    result: dict[str, Any] = {
        "saves": count,
        "seconds": seconds,
        "computations_per_run": snapshots,
        "summary": {
            "connected_us_per_save": 1e6 * connected / count,
            "disconnected_us_per_save": 1e6 * disconnected / count,
            "bare_us_per_save": 1e6 * bare / count,
            "overhead_pct": 100 * (connected / bare - 1),
            "triggers_pct": 100 * (disconnected / bare - 1),
        },
        # Overhead of each set of runs, for the spread.
        "overhead_pct_runs": [
            100 * (c / b - 1) for c, b in zip(seconds["connected"], seconds["bare"], strict=True)
        ],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
