"""graphapp.api, the public Python API."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from graphapp import api
from graphapp.models import Edge, Node
from graphapp.publish import publisher

pytestmark = pytest.mark.django_db(transaction=True)


def test_add_node_saves_and_publishes(published: list[dict[str, Any]]) -> None:
    node = api.add_node(
        "Caches expire after 5 minutes", "FACT", momentum=0.5, metadata={"source": "docs"}
    )
    assert publisher.flush(10)
    assert Node.objects.get(pk=node.pk).metadata == {"source": "docs"}
    assert published[-1]["tiers"]["WARM"] == 1


@pytest.mark.parametrize(
    ("content", "node_type", "momentum", "field"),
    [("x", "NOPE", 0.5, "node_type"), ("", "FACT", 0.5, "content"), ("x", "FACT", 1.5, "momentum")],
)
def test_add_node_rejects_bad_values_and_saves_nothing(
    content: str, node_type: str, momentum: float, field: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        api.add_node(content, node_type, momentum=momentum)
    assert field in raised.value.message_dict
    assert not Node.objects.exists()


def test_connect_creates_then_updates_the_one_edge_of_a_pair() -> None:
    a, b = api.add_node("a", "CODE"), api.add_node("b", "FACT")
    first = api.connect(a, b, relation="implements", weight=0.8)
    again = api.connect(a, b, relation="depends_on", weight=0.2)
    assert first.pk == again.pk
    edge = Edge.objects.get()
    assert (edge.relation, edge.weight) == ("depends_on", 0.2)
    with pytest.raises(ValidationError):
        api.connect(a, b, relation="Not Snake Case")
    with pytest.raises(ValidationError):
        api.connect(a, b, relation="relates_to\n")  # "$" alone would match before "\n"
    assert Edge.objects.get().relation == "depends_on"


def test_activate_decay_and_prune_return_counts() -> None:
    cold = api.add_node("cold", "DREAM", momentum=0.1)
    api.add_node("hot", "DREAM", momentum=0.9)
    assert api.activate(cold) == 1
    cold.refresh_from_db()
    assert cold.momentum == pytest.approx(0.4, abs=1e-3)
    assert api.decay(hours=2) == 2
    assert api.prune(0.35) == 1  # cold: 0.4 - 0.1 = 0.3
    with pytest.raises(ValueError, match="below"):
        api.prune(0)
    assert api.snapshot()["nodes"] == 1


def test_publish_after_own_bulk_changes(published: list[dict[str, Any]]) -> None:
    Node.objects.bulk_create(Node(content=f"bulk {i}", node_type="ENTITY") for i in range(50))
    assert published == []  # bulk_create sends no signal
    assert api.publish(wait=True)
    assert [snapshot["nodes"] for snapshot in published] == [50]
    with transaction.atomic(), pytest.raises(RuntimeError):
        api.publish(wait=True)
