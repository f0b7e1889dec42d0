"""Scenario 7: time of ``graphapp.stats.compute_stats()`` by graph size.

Run as ``python -m bench.statscost SIZES REPEATS`` (sizes comma-separated, growing)
with the benchmark site's environment on an empty, migrated database; prints
JSON. Seeds with plain SQL (5 edges per node, each to a node computed from the
source's number), grows the graph from one size to the next, VACUUM/ANALYZE,
then times one warm-up and REPEATS computations.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

import django

TYPES = ("FACT", "CONCEPT", "CODE", "DREAM", "ENTITY")

# Node i (0-based) gets id i + 1; its edges go to (i*7 + k*13) mod size, k = 1..5.
PG_SEED = """
SET session_replication_role = replica;
INSERT INTO graphapp_node (id, content, node_type, momentum, created_at, last_accessed,
                           decayed_at, metadata)
SELECT i + 1, 'node ' || i, (ARRAY['FACT','CONCEPT','CODE','DREAM','ENTITY'])[1 + i %% 5],
       (i %% 1000) / 1000.0, now(), now(), now(), '{}'::jsonb
FROM generate_series(%(low)s, %(high)s - 1) AS i;
INSERT INTO graphapp_edge (source_id, target_id, relation, weight, created_at)
SELECT i + 1, (i * 7 + k * 13) %% %(high)s + 1, 'relates_to', 0.5, now()
FROM generate_series(%(low)s, %(high)s - 1) AS i, generate_series(1, 5) AS k
WHERE (i * 7 + k * 13) %% %(high)s <> i
ON CONFLICT DO NOTHING;
SET session_replication_role = DEFAULT;
SELECT setval(pg_get_serial_sequence('graphapp_node', 'id'), %(high)s);
"""

SQLITE_NODES = """
WITH RECURSIVE seq(i) AS (SELECT {low} UNION ALL SELECT i + 1 FROM seq WHERE i < {high} - 1)
INSERT INTO graphapp_node (id, content, node_type, momentum, created_at, last_accessed,
                           decayed_at, metadata)
SELECT i + 1, 'node ' || i,
       CASE i % 5 WHEN 0 THEN 'FACT' WHEN 1 THEN 'CONCEPT' WHEN 2 THEN 'CODE'
                  WHEN 3 THEN 'DREAM' ELSE 'ENTITY' END,
       (i % 1000) / 1000.0, datetime('now'), datetime('now'), datetime('now'), '{{}}'
FROM seq
"""
SQLITE_EDGES = """
WITH RECURSIVE seq(i) AS (SELECT {low} UNION ALL SELECT i + 1 FROM seq WHERE i < {high} - 1),
     ks(k) AS (VALUES (1), (2), (3), (4), (5))
INSERT OR IGNORE INTO graphapp_edge (source_id, target_id, relation, weight, created_at)
SELECT i + 1, (i * 7 + k * 13) % {high} + 1, 'relates_to', 0.5, datetime('now')
FROM seq, ks WHERE (i * 7 + k * 13) % {high} <> i
"""


def grow(low: int, high: int) -> float:
    from django.db import connection

    from graphapp import ledger

    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(PG_SEED, {"low": low, "high": high})
        else:
            cursor.execute("PRAGMA synchronous=OFF")
            for sql in (SQLITE_NODES, SQLITE_EDGES):
                cursor.execute(sql.format(low=low, high=high))
    if connection.vendor == "postgresql":
        # The seed skipped the triggers (replication role): the degree ledger
        # is recomputed from the edges, as after a restore without triggers.
        ledger.rebuild()
        connection.close()  # VACUUM cannot run inside the pool's transaction handling
        with connection.cursor() as cursor:
            for table in ("graphapp_node", "graphapp_edge", ledger.DEGREE):
                cursor.execute(f"VACUUM ANALYZE {table}")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
            cursor.execute("PRAGMA synchronous=NORMAL")
    return time.perf_counter() - started


def main() -> None:
    django.setup()
    from graphapp.stats import compute_stats

    sizes = [int(size) for size in sys.argv[1].split(",")]
    repeats = int(sys.argv[2])
    rows: list[dict[str, Any]] = []
    low = 0
    for size in sizes:
        seeded = grow(low, size)
        low = size
        stats = compute_stats()  # warm-up: the pages into the cache
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            compute_stats()
            times.append(1000 * (time.perf_counter() - started))
        rows.append(
            {
                "nodes": stats["nodes"],
                "edges": stats["edges"],
                "ms": times,
                "median_ms": statistics.median(times),
                "seed_s": seeded,
            }
        )
        print(f"{size}: {statistics.median(times):.1f} ms", file=sys.stderr, flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
