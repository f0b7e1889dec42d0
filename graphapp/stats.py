"""The statistics snapshot, computed in the database with a fixed number of queries.

Two queries whatever the graph's size: one aggregate over nodes (total, per
tier, per type), and one that counts the edges and sums every node's
entanglement: over the per-node sums the database keeps (graphapp.ledger, on
PostgreSQL and SQLite), or elsewhere over the edges themselves. No Python loop
touches a row.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, TypedDict

from django.db import DEFAULT_DB_ALIAS, DataError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, Field, Q

from graphapp import ledger
from graphapp.conf import get_config
from graphapp.models import Edge, Node, NodeType, Tier, tier_q


class Stats(TypedDict):
    """The statistics of a snapshot, before it gets its version and time."""

    nodes: int
    edges: int | None  # None when GRAPHAPP["EDGES"] is off
    avg_entanglement: float | None  # None when GRAPHAPP["ENTANGLEMENT"] is off
    tiers: dict[str, int]
    types: dict[str, int]


# The statement the ORM writes for the node counts, per database alias, kept
# after its first use: building and compiling a dozen filtered aggregates costs
# about 1 ms of Python per snapshot, four times what SQLite spends running it
# on 1,000 nodes (bench/: the publication sits between a commit and every
# stream's event). The column aliases name the counts.
_node_counts_statements: dict[tuple[str, str], tuple[str, tuple[Any, ...]]] = {}


def _node_counts(using: str = DEFAULT_DB_ALIAS) -> dict[str, int]:
    connection = connections[using]
    statement = _node_counts_statements.get((using, connection.vendor))
    if statement is None:
        return _compile_node_counts(using)
    with connection.cursor() as cursor:
        cursor.execute(*statement)
        row = cursor.fetchone()
        names = [column[0] for column in cursor.description]
    return dict(zip(names, row, strict=True))


def _compile_node_counts(using: str) -> dict[str, int]:
    """Count through the ORM, and keep the statement it ran for the next calls."""
    connection = connections[using]
    seen: list[tuple[str, tuple[Any, ...]]] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append((sql, tuple(params or ())))
        return execute(sql, params, many, context)

    aggregates: dict[str, Any] = {"nodes": Count("pk")}
    aggregates |= {f"tier:{tier}": Count("pk", filter=tier_q(tier)) for tier in Tier.values}
    aggregates |= {
        f"type:{kind}": Count("pk", filter=Q(node_type=kind)) for kind in NodeType.values
    }
    with connection.execute_wrapper(record):
        counts = Node.objects.using(using).order_by().aggregate(**aggregates)
    if len(seen) == 1:
        _node_counts_statements[using, connection.vendor] = seen[0]
    return counts


# Per node: degree in both directions and mean outgoing weight, folded into
# min(1, degree / (N - 1) * (1 + w)) and summed; the edge count comes with it.
#
# Over the edges themselves, where the database keeps no ledger (PostgreSQL
# and SQLite do: graphapp.ledger). Each end's aggregate is grouped in the order of an
# index it reads alone (covering (source_id, weight), and target_id), then the
# at most 2N per-node rows are grouped once more: on SQLite 150 ms at 100k nodes
# and 300k edges, where grouping every edge end took 200.
#
# As in the ledger, whatever the rows hold the sums stay finite: each weight
# counts clamped to [0, 1] (NaN, which PostgreSQL orders above every number,
# as 1), and degree / (N - 1) * ((o + w) / o) never divides a tiny w.
_ENTANGLEMENT_SQL = """
SELECT COALESCE(SUM(o), 0),
       COALESCE(SUM(CASE WHEN x > 1.0 THEN 1.0 ELSE x END), 0.0) FROM (
    SELECT SUM(o) AS o, CAST(SUM(d) AS DOUBLE PRECISION) / %s
           * COALESCE(CAST(SUM(o) + SUM(w) AS DOUBLE PRECISION) / NULLIF(SUM(o), 0), 1.0) AS x
    FROM (
        SELECT {source} AS n, COUNT(*) AS d, COUNT(*) AS o,
               SUM(CASE WHEN {weight} >= 1.0 THEN 1.0 WHEN {weight} > 0.0 THEN {weight}
                        ELSE 0.0 END) AS w
        FROM {edge} GROUP BY {source}
        UNION ALL
        SELECT {target}, COUNT(*), 0, 0.0 FROM {edge} GROUP BY {target}
    ) AS ends
    GROUP BY n
) AS per_node
"""


def _column(field: Field[Any, Any]) -> str:
    """A concrete field's column: django-stubs types it optional for every field,
    while only relations that keep no column of their own (many-to-many) have none."""
    if field.column is None:
        raise TypeError(f"{field} has no database column")
    return field.column


def _entanglement_sql(connection: BaseDatabaseWrapper) -> str:
    quote = connection.ops.quote_name
    meta = Edge._meta
    return _ENTANGLEMENT_SQL.format(
        edge=quote(meta.db_table),
        source=quote(_column(meta.get_field("source"))),
        target=quote(_column(meta.get_field("target"))),
        weight=quote(_column(meta.get_field("weight"))),
    )


def edges_and_entanglement(node_count: int, using: str = DEFAULT_DB_ALIAS) -> tuple[int, float]:
    """The number of edges, and the sum over nodes of their entanglement.

    A node's entanglement is min(1, degree / (N - 1) * (1 + mean outgoing
    weight)); ``degree`` counts its edges in both directions, a node with no
    outgoing edge has a mean weight of 0, and a node with no edge adds 0.
    With N <= 1 every node's entanglement is 0.
    """
    if node_count <= 1:
        return Edge.objects.using(using).count(), 0.0
    if ledger.in_use(using):
        return ledger.entanglement(node_count, using)
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(_entanglement_sql(connection), [float(node_count - 1)])
        row = cursor.fetchone()
    return (int(row[0]), float(row[1])) if row else (0, 0.0)


@contextlib.contextmanager
def one_snapshot(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Run the statistics' queries on one snapshot of the database.

    Otherwise a commit landing between them would mix two states (the node
    count of one, the edges of the next: an average entanglement above 1).
    SQLite's transaction reads one snapshot; PostgreSQL's does at REPEATABLE
    READ (read-only, so it never fails to serialize). Inside the caller's own
    transaction, its isolation decides.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            quote = connection.ops.quote_name
            tables = ", ".join(quote(model._meta.db_table) for model in (Node, Edge))
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                # Before the first query takes the snapshot: a TRUNCATE being
                # committed (not MVCC-safe) is waited for, never half seen.
                cursor.execute(f"LOCK TABLE {tables} IN ACCESS SHARE MODE")
        yield


def compute_stats() -> Stats:
    """Count nodes per tier and type, edges, and the average entanglement (2 queries,
    on one snapshot).

    ``GRAPHAPP["ENTANGLEMENT"] = False`` replaces the second query by a plain
    edge count, and ``GRAPHAPP["EDGES"] = False`` drops it.
    """
    with one_snapshot():
        return _compute_stats()


def _compute_stats() -> Stats:
    config = get_config()
    counts = _node_counts()
    nodes = counts["nodes"]
    edges: int | None = None
    average: float | None = None
    if config["ENTANGLEMENT"]:
        edges, entanglement = edges_and_entanglement(nodes)
        if not math.isfinite(entanglement):
            # The last guard (the SQL clamps every value it sums): a snapshot
            # must be valid JSON, which has no NaN nor Infinity.
            raise DataError(
                f"graphapp: the entanglement sum came out as {entanglement}, not a finite "
                "number; edges or the degree ledger hold values past their bounds "
                "(manage.py graph_stats --rebuild recomputes the ledger)"
            )
        average = round(entanglement / nodes, 3) if nodes > 1 else 0.0
    elif config["EDGES"]:
        edges = Edge.objects.count()
    return {
        "nodes": nodes,
        "edges": edges,
        "avg_entanglement": average,
        "tiers": {tier: counts[f"tier:{tier}"] for tier in Tier.values},
        "types": {kind: counts[f"type:{kind}"] for kind in NodeType.values},
    }
