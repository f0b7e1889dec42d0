"""The statistics snapshot, computed in the database with a fixed number of queries.

Three queries whatever the graph's size: one aggregate over nodes (total, per
tier, per type), one edge count, and one aggregate of entanglement over a single
pass on the edges. No Python loop touches a row.
"""

from __future__ import annotations

from typing import Any, TypedDict

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, Q

from graphapp.models import Edge, Node, NodeType, Tier, tier_q


class Stats(TypedDict):
    """The statistics of a snapshot, before it gets its version and time."""

    nodes: int
    edges: int
    avg_entanglement: float
    tiers: dict[str, int]
    types: dict[str, int]


def _node_counts() -> dict[str, int]:
    aggregates: dict[str, Any] = {"nodes": Count("pk")}
    aggregates |= {f"tier:{tier}": Count("pk", filter=tier_q(tier)) for tier in Tier.values}
    aggregates |= {
        f"type:{kind}": Count("pk", filter=Q(node_type=kind)) for kind in NodeType.values
    }
    return Node.objects.order_by().aggregate(**aggregates)


# Every edge end once: (node, weight if outgoing else 0, 1 if outgoing else 0),
# grouped by node. One scan of the edges, whatever their number, in plain SQL
# that SQLite and PostgreSQL both run (the ORM cannot aggregate over a UNION).
# Only quoted identifiers are formatted in; the one value is a parameter.
_ENTANGLEMENT_SQL = """
SELECT COALESCE(SUM(CASE WHEN x > 1.0 THEN 1.0 ELSE x END), 0.0) FROM (
    SELECT CAST(COUNT(*) AS DOUBLE PRECISION) / %s
           * (1.0 + COALESCE(SUM(w) / NULLIF(SUM(o), 0), 0.0)) AS x
    FROM (
        SELECT {source} AS n, {weight} AS w, 1 AS o FROM {edge}
        UNION ALL
        SELECT {target}, 0.0, 0 FROM {edge}
    ) AS ends
    GROUP BY n
) AS per_node
"""


def _entanglement_sql(connection: BaseDatabaseWrapper) -> str:
    quote = connection.ops.quote_name
    meta = Edge._meta
    return _ENTANGLEMENT_SQL.format(
        edge=quote(meta.db_table),
        source=quote(meta.get_field("source").column),
        target=quote(meta.get_field("target").column),
        weight=quote(meta.get_field("weight").column),
    )


def entanglement_sum(node_count: int, using: str = DEFAULT_DB_ALIAS) -> float:
    """Sum over nodes of min(1, degree / (N - 1) * (1 + mean outgoing weight)).

    ``degree`` counts a node's edges in both directions; a node with no
    outgoing edge has a mean weight of 0, and a node with no edge adds 0.
    """
    if node_count <= 1:
        return 0.0
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(_entanglement_sql(connection), [float(node_count - 1)])
        row = cursor.fetchone()
    return float(row[0]) if row else 0.0


def compute_stats() -> Stats:
    """Count nodes per tier and type, edges, and the average entanglement."""
    counts = _node_counts()
    nodes = counts["nodes"]
    edges = Edge.objects.count()
    average = entanglement_sum(nodes) / nodes if nodes > 1 and edges else 0.0
    return {
        "nodes": nodes,
        "edges": edges,
        "avg_entanglement": round(average, 3),
        "tiers": {tier: counts[f"tier:{tier}"] for tier in Tier.values},
        "types": {kind: counts[f"type:{kind}"] for kind in NodeType.values},
    }
