"""The statistics snapshot, computed in the database with a fixed number of queries.

Three queries whatever the graph's size: one aggregate over nodes (total, per
tier, per type), one edge count, and one aggregate of entanglement in which each
node's degree and mean outgoing weight come from correlated subqueries on the
edge indexes. No Python loop touches a row.
"""

from __future__ import annotations

from typing import Any, TypedDict

from django.db.models import (
    Avg,
    Count,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Least

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


def _edge_subquery(direction: str, aggregate: Any) -> Subquery:
    edges: QuerySet[Edge] = Edge.objects.filter(**{direction: OuterRef("pk")}).order_by()
    return Subquery(edges.values(direction).annotate(value=aggregate).values("value"))


def entanglement_sum(node_count: int) -> float:
    """Sum over nodes of min(1, degree / (N - 1) * (1 + mean outgoing weight)).

    ``degree`` counts a node's edges in both directions; a node with no
    outgoing edge has a mean weight of 0.
    """
    if node_count <= 1:
        return 0.0
    float_field: FloatField[float, float] = FloatField()
    out_degree = Coalesce(_edge_subquery("source", Count("*")), 0)
    in_degree = Coalesce(_edge_subquery("target", Count("*")), 0)
    out_weight = Coalesce(
        _edge_subquery("source", Avg("weight")), Value(0.0), output_field=float_field
    )
    per_node = Least(
        Value(1.0),
        Cast(F("degree"), float_field) / Value(float(node_count - 1)) * (Value(1.0) + F("w")),
        output_field=float_field,
    )
    total = (
        Node.objects.order_by()
        .annotate(degree=out_degree + in_degree, w=out_weight)
        .aggregate(total=Coalesce(Sum(per_node), Value(0.0), output_field=float_field))
    )["total"]
    return float(total)


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
