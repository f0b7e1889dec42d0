"""Rows for tests, with explicit times."""

import datetime

from django.contrib.auth.models import Permission, User
from django.test import Client

from graphapp.models import Edge, Node, NodeType

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


def hub(edges: int, *, direction: str, weight: float = 0.5) -> Node:
    """A node with ``edges`` edges in ``direction`` ("outgoing" or "incoming"),
    each to a node of its own (``bulk_create``: nothing is published)."""
    center = Node.objects.create(content="the hub", node_type=NodeType.CONCEPT, momentum=0.5)
    spokes = Node.objects.bulk_create(
        Node(content=f"spoke {i}", node_type=NodeType.FACT) for i in range(edges)
    )
    Edge.objects.bulk_create(
        Edge(source=center, target=spoke, weight=weight)
        if direction == "outgoing"
        else Edge(source=spoke, target=center, weight=weight)
        for spoke in spokes
    )
    return center


def editor_client() -> Client:
    """A test client logged in as a user who may view and add nodes."""
    user = User.objects.create_user("editor")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_node", "add_node"]))
    client = Client()
    client.force_login(user)
    return client
