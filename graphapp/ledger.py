"""Every node's edge counts and outgoing weight, kept by the database itself.

The average entanglement needs, per node, its edges in both directions and the
sum of its outgoing weights. Grouping the edges for them at every snapshot cost
PostgreSQL 1.4-2 s at a million nodes and five million edges on two cores, and
reading the edges alone 0.66 s (bench/). So on PostgreSQL and SQLite the
database keeps those sums (migration 0004), and a snapshot reads one narrow row
per node that has edges:

* triggers on the edge table follow every INSERT and DELETE, and every UPDATE
  that moves an end or changes a weight, however it is made (the ORM, bulk
  operations, cascades, raw SQL, other programs);
* on PostgreSQL they only append, one row per edge end, to
  ``graphapp_degree_delta`` (a TRUNCATE empties both tables): two transactions
  adding edges to the same hub node share no row, so they never wait for each
  other nor deadlock. :func:`compact` folds the appended rows into
  ``graphapp_degree`` in one transaction, one process at a time; the publisher
  calls it after each publication, off the path from a commit to the streams.
  The statistics read both tables in their one snapshot: a folded row as it is,
  and the nodes with rows pending summed with them;
* on SQLite, where one writer at a time holds the whole database, they update
  ``graphapp_degree`` in place.

Writes that skip triggers (``session_replication_role = replica``,
``pg_restore --disable-triggers``, an SQLite table rebuilt by a later
migration of the edge table, which drops its triggers) leave the ledger behind:
:func:`rebuild` (``manage.py graph_stats --rebuild``) recomputes it, and
tests/test_ledger.py checks that the triggers exist after every migration.
Other databases group the edges at every snapshot (graphapp.stats).

The weight sums are running floating-point sums: against a fresh grouping they
differ by rounding (weights are at most 1, so by about 1e-16 per edge added or
removed), and a node's sum starts again from exactly 0 whenever it has no
outgoing edge. Every weight counts clamped to [0, 1], the bounds of the edge
table's constraint, so rows that got past it (or were written straight into
the ledger) can make the statistics wrong until a rebuild, never infinite.

On SQLite, an ``INSERT OR REPLACE`` of an edge that replaces another removes
that one without its DELETE trigger (SQLite's ``recursive_triggers`` is off by
default); Django never writes one, and ``rebuild()`` repairs it.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from graphapp import schema, versions

DEGREE = "graphapp_degree"
DELTA = "graphapp_degree_delta"
# pg_try_advisory_xact_lock key: one compaction at a time across processes.
_COMPACT_LOCK = 0x67_72_61_70_68_64_65_67  # "graphdeg"

# Whatever the rows hold (a weight past the constraint, a row written straight
# into these tables, NaN on PostgreSQL), every sum below is finite: PostgreSQL
# refuses to overflow (1e308 + 1e308 is an error, and so is a quotient that
# underflows to 0) and SQLite gives inf, or NULL for inf - inf.
#
# * A pending row is one edge end: its weight counts clamped to [0, 1] (NaN as
#   the default 1.0), negated for a removal, so an edge added and removed
#   cancels out whatever its weight;
# * a node's sum of weights counts clamped to [0, its outgoing edges];
# * its entanglement, min(1, degree / (N - 1) * (1 + w / o)), is computed as
#   degree / (N - 1) * ((o + w) / o): the quotient is between 1 and 2, where
#   w / o with a tiny w (5e-324) underflows.
#
# On rows that hold what the triggers wrote, none of this changes a value; it
# costs about 30 ns a row (this query on 1M rows: 150-165 -> 185-190 ms, medians
# of 15 runs on two busy cores).
_PENDING_WEIGHT = """CASE WHEN out_edges > 0 THEN LEAST(out_edges, GREATEST(0.0, out_weight))
          WHEN out_edges < 0 THEN -LEAST(-out_edges, GREATEST(0.0, -out_weight))
          ELSE 0.0 END"""


def _entanglement(o: str, i: str, w: str, vendor: str) -> str:
    """A node's entanglement from its outgoing edges, incoming ones and weight sum
    (expressions over one row), and the parameter N - 1."""
    if vendor == "postgresql":
        least, greatest, divisor = "LEAST", "GREATEST", f"NULLIF({o}, 0)"
    else:  # SQLite's MIN(o, x) may be the integer o: divide as reals
        least, greatest, divisor = "MIN", "MAX", f"CAST(NULLIF({o}, 0) AS REAL)"
    return (
        f"{least}(1.0, ({o} + {i}) / %s"
        f" * COALESCE(({o} + {least}({o}, {greatest}(0.0, {w}))) / {divisor}, 1.0))"
    )


# Parameters: N - 1 (as a float), twice. Returns the edge count and the sum of
# every node's entanglement, as the direct grouping of the edges does.
_POSTGRESQL_SQL = f"""
SELECT COALESCE(SUM(o), 0), COALESCE(SUM(e), 0.0) FROM (
    SELECT SUM(d.out_edges) AS o,
           SUM({_entanglement("d.out_edges", "d.in_edges", "d.out_weight", "postgresql")})
           AS e
    FROM {DEGREE} AS d
    WHERE NOT EXISTS (SELECT FROM {DELTA} AS p WHERE p.node_id = d.node_id)
    UNION ALL
    SELECT SUM(o), SUM({_entanglement("o", "i", "w", "postgresql")}) FROM (
        SELECT SUM(out_edges) AS o, SUM(in_edges) AS i, SUM(out_weight) AS w FROM (
            SELECT node_id, out_edges, in_edges, LEAST(out_edges, GREATEST(0.0, out_weight))
            FROM {DEGREE}
            WHERE node_id IN (SELECT node_id FROM {DELTA})
            UNION ALL
            SELECT node_id, out_edges, in_edges, {_PENDING_WEIGHT} FROM {DELTA}
        ) AS rows_of_pending_nodes (node_id, out_edges, in_edges, out_weight)
        GROUP BY node_id
    ) AS pending
) AS parts
"""

# Parameter: N - 1 (as a float). Nothing is ever pending on SQLite, and its
# triggers add each weight clamped (migration 0006).
_SQLITE_SQL = f"""
SELECT COALESCE(SUM(out_edges), 0),
       COALESCE(SUM({_entanglement("out_edges", "in_edges", "out_weight", "sqlite")}), 0.0)
FROM {DEGREE}
"""

# Folds the pending rows in, in node order (two compactions never lock rows in
# opposite orders); a node left without outgoing edges keeps no float residue
# of its removed weights, and a node's sum stays within [0, its outgoing
# edges]. Returns the nodes folded and what they hold now.
_FOLD_SQL = f"""
WITH moved AS (DELETE FROM {DELTA} RETURNING node_id, out_edges, in_edges, out_weight)
INSERT INTO {DEGREE} AS d (node_id, out_edges, in_edges, out_weight)
SELECT node_id, SUM(out_edges), SUM(in_edges), SUM({_PENDING_WEIGHT})
FROM moved GROUP BY node_id ORDER BY node_id
ON CONFLICT (node_id) DO UPDATE SET
    out_edges = d.out_edges + EXCLUDED.out_edges,
    in_edges = d.in_edges + EXCLUDED.in_edges,
    out_weight = CASE WHEN d.out_edges + EXCLUDED.out_edges <= 0 THEN 0.0
                      ELSE LEAST(d.out_edges + EXCLUDED.out_edges,
                                 GREATEST(0.0, d.out_weight + EXCLUDED.out_weight)) END
RETURNING node_id, out_edges, in_edges, out_weight
"""

_BACKFILL_SQL = f"""
INSERT INTO {DEGREE} (node_id, out_edges, in_edges, out_weight)
SELECT node_id, SUM(out_edges), SUM(in_edges), SUM(out_weight) FROM (
    SELECT source_id AS node_id, 1 AS out_edges, 0 AS in_edges,
           CASE WHEN weight >= 1.0 THEN 1.0 WHEN weight > 0.0 THEN weight ELSE 0.0 END
           AS out_weight
    FROM graphapp_edge
    UNION ALL
    SELECT target_id, 0, 1, 0.0 FROM graphapp_edge
) AS ends
GROUP BY node_id
"""


def in_use(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the database behind ``using`` keeps the ledger: PostgreSQL and
    SQLite do once migration 0004 ran."""
    return schema.has_table(DEGREE, using)


def entanglement(node_count: int, using: str = DEFAULT_DB_ALIAS) -> tuple[int, float]:
    """The number of edges and the sum of every node's entanglement, from the
    ledger (``node_count`` > 1 nodes); see graphapp.stats.edges_and_entanglement."""
    connection = connections[using]
    others = float(node_count - 1)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_POSTGRESQL_SQL, [others, others])
        else:
            cursor.execute(_SQLITE_SQL, [others])
        row = cursor.fetchone()
    return (int(row[0]), float(row[1])) if row else (0, 0.0)


def compact(using: str = DEFAULT_DB_ALIAS) -> int | None:
    """PostgreSQL: fold the pending rows into the per-node rows; how many nodes
    were folded, or None when another process was folding (it folds ours too,
    or the next call will). Elsewhere nothing is pending: 0.

    Its own transaction; inside another one the fold holds its locks until that
    one ends.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return 0
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_COMPACT_LOCK])
        if not cursor.fetchone()[0]:
            return None
        cursor.execute(_FOLD_SQL)
        folded = cursor.fetchall()
        emptied = [node for node, out_edges, in_edges, _ in folded if not (out_edges or in_edges)]
        if emptied:
            # Nodes left without any edge (deleted ones too) keep no row.
            cursor.execute(
                f"DELETE FROM {DEGREE} WHERE node_id = ANY(%s) AND out_edges = 0 AND in_edges = 0",
                [emptied],
            )
        residue = [node for node, out_edges, in_edges, weight in folded if not out_edges and weight]
        if residue:
            # A new row whose outgoing edges came and went within one window.
            cursor.execute(
                f"UPDATE {DEGREE} SET out_weight = 0.0 WHERE node_id = ANY(%s) AND out_edges = 0",
                [residue],
            )
    return len(folded)


def rebuild(using: str = DEFAULT_DB_ALIAS) -> None:
    """Recompute the ledger from the edges (after writes that skipped triggers).

    Edge writers wait meanwhile (PostgreSQL: the edge table is locked in SHARE
    mode; SQLite: the write holds the database), so no change is missed.
    """
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("LOCK TABLE graphapp_edge IN SHARE MODE")
            # DELETE, not TRUNCATE: a snapshot taken before this commits must
            # still see the old rows, never an empty ledger (TRUNCATE is not MVCC-safe).
            cursor.execute(f"DELETE FROM {DELTA}")
        cursor.execute(f"DELETE FROM {DEGREE}")
        cursor.execute(_BACKFILL_SQL)
        # The statistics change with no write to the graph's tables: every
        # process's hub must see a new version, or keep showing the old numbers.
        versions.bump(using)
