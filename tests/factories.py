"""Rows for tests, with explicit times."""

import datetime

from graphapp.models import Node, NodeType

T0 = datetime.datetime(2024, 3, 1, 12, 0, tzinfo=datetime.UTC)


def node_at(momentum: float = 1.0, at: datetime.datetime = T0) -> Node:
    """A FACT with ``momentum`` created, accessed and decayed at ``at``."""
    return Node.objects.create(
        content="n",
        node_type=NodeType.FACT,
        momentum=momentum,
        created_at=at,
        last_accessed=at,
        decayed_at=at,
    )
