"""graphapp's public Python API: change the graph from your own code.

Every function saves through the ORM or one of graphapp's bulk operations and
publishes once its transaction commits, so open streams show the change::

    from graphapp import api

    fact = api.add_node("Caches expire after 5 minutes", "FACT")
    code = api.add_node("cache.py:42", "CODE", momentum=0.6)
    api.connect(code, fact, relation="implements", weight=0.8)
    api.activate([fact])
    api.snapshot()["nodes"]

After your own bulk changes (``bulk_create()``, ``QuerySet.update()``), which
send no signals, call :func:`publish`. To receive every snapshot server-side,
connect to :data:`graph_stats_published`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from graphapp import operations, snapshots
from graphapp.models import Edge, Node
from graphapp.publish import graph_stats_published, publish_now
from graphapp.signals import publish_on_commit
from graphapp.types import Snapshot

__all__ = [
    "activate",
    "add_node",
    "connect",
    "decay",
    "graph_stats_published",
    "prune",
    "publish",
    "snapshot",
]


def add_node(
    content: str,
    node_type: str,
    *,
    momentum: float = 1.0,
    metadata: dict[str, Any] | None = None,
) -> Node:
    """Validate and save a node; raises ``django.core.exceptions.ValidationError``
    (a ``momentum`` that is not a finite number from 0 to 1 included, ``metadata``
    over ``MAX_METADATA_BYTES`` as compact JSON)."""
    node = Node(
        content=content,
        node_type=node_type,
        momentum=momentum,
        metadata={} if metadata is None else metadata,
    )
    node.full_clean()
    node.save()
    return node


def connect(
    source: Node, target: Node, *, relation: str = "relates_to", weight: float = 1.0
) -> Edge:
    """The edge from ``source`` to ``target``, created or updated (one per pair).

    ``weight`` must be a finite number from 0 to 1; raises
    ``django.core.exceptions.ValidationError`` (nothing is saved)."""
    with transaction.atomic():
        edge = Edge.objects.select_for_update().filter(source=source, target=target).first()
        if edge is None:
            edge = Edge(source=source, target=target)
        edge.relation, edge.weight = relation, weight
        edge.full_clean(validate_unique=False)
        edge.save()
    return edge


def _queryset(nodes: Node | Iterable[Node] | QuerySet[Node]) -> QuerySet[Node]:
    if isinstance(nodes, QuerySet):
        return nodes
    if isinstance(nodes, Node):
        nodes = [nodes]
    return Node.objects.filter(pk__in=[node.pk for node in nodes])


def activate(nodes: Node | Iterable[Node] | QuerySet[Node]) -> int:
    """Access nodes: settle their decay, add 0.3 (at most 1); returns how many."""
    return operations.activate(_queryset(nodes))


def decay(*, hours: float | None = None) -> int:
    """Decay every node (see :func:`graphapp.operations.decay`); returns how many.

    ``hours`` must be a finite number from 0 to a year's (8760); raises ValueError."""
    return operations.decay(hours=hours)


def prune(below: float) -> int:
    """Delete the nodes whose momentum is below ``below``, with their edges."""
    if not 0 < below <= 1:
        raise ValueError(f"below must be in (0, 1], not {below}")
    return operations.prune_below(below)


def snapshot() -> Snapshot:
    """The current statistics, computed now (nothing is published)."""
    return snapshots.take()


def publish(*, wait: bool = False, timeout: float = 10.0) -> bool:
    """Publish the current statistics: after the current transaction commits, or
    at once outside one. With ``wait``, block until sent (False on time-out)."""
    if wait:
        if transaction.get_connection().in_atomic_block:
            raise RuntimeError(
                "publish(wait=True) inside a transaction would publish before it commits"
            )
        return publish_now(timeout)
    publish_on_commit()
    return True
