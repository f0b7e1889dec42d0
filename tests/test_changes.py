"""Node changes: the bounded batch, and what saves, deletes and bulk operations record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings

from graphapp import operations
from graphapp.changes import ChangeBatch, change
from graphapp.models import Edge, Node
from graphapp.publish import graph_changes_published, publisher


def created(id: int, tier: str = "HOT") -> dict[str, Any]:
    return change("created", id, "FACT", tier)


def test_batch_lists_changes_up_to_its_limit() -> None:
    batch = ChangeBatch.of(3, [created(1), created(2), created(3)])
    assert batch.items == [created(1), created(2), created(3)]
    assert batch.summary == {}
    assert len(batch) == 3


def test_batch_past_its_limit_keeps_only_counts_per_kind() -> None:
    batch = ChangeBatch.of(3, [created(1), created(2), change("deleted", 9, "CODE", "COLD")])
    batch.add(created(4))
    assert batch.items == []
    assert batch.summary == {"created": 3, "deleted": 1}
    assert len(batch) == 4


def test_batch_of_two_thousand_changes_stays_small() -> None:
    batch = ChangeBatch(20)
    for i in range(2000):
        batch.add(created(i))
    assert batch.summary == {"created": 2000}
    assert len(batch.encode(1)) < 100


def test_batch_merge_lists_when_both_fit_and_counts_when_not() -> None:
    listed = ChangeBatch.of(4, [created(1), created(2)])
    listed.merge(ChangeBatch.of(4, [created(3)]))
    assert [item["id"] for item in listed.items] == [1, 2, 3]
    listed.merge(ChangeBatch.of(4, [created(4), change("tier", 1, "FACT", "COLD", "HOT")]))
    assert listed.items == []
    assert listed.summary == {"created": 4, "tier": 1}
    listed.merge(ChangeBatch.of(4, updated=1000))
    assert listed.summary == {"created": 4, "tier": 1, "updated": 1000}


def test_batch_encode_and_decode_round_trip() -> None:
    batch = ChangeBatch.of(5, [change("tier", 7, "DREAM", "WARM", "HOT")], deleted=0)
    data = json.loads(batch.encode(123))
    assert data == {
        "version": 123,
        "changes": [{"kind": "tier", "id": 7, "node_type": "DREAM", "tier": "WARM", "from": "HOT"}],
        "summary": {},
    }
    again = ChangeBatch.decode(batch.encode(123), 5)
    assert again.items == batch.items
    assert again.summary == batch.summary


@pytest.mark.parametrize(
    "data",
    [
        "[]",
        '{"changes": {}, "summary": {}}',
        '{"changes": [{"kind": "exploded"}], "summary": {}}',
        '{"changes": [], "summary": {"created": "many"}}',
        "not json",
    ],
)
def test_batch_decode_rejects_malformed_data(data: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        ChangeBatch.decode(data, 5)


# -- what the receivers and the bulk operations record --------------------------


@pytest.fixture
def changes() -> Iterator[list[dict[str, Any]]]:
    """The change data this process publishes during the test."""
    assert publisher.wait(10), "an earlier publication did not finish"
    seen: list[dict[str, Any]] = []

    def receive(changes: dict[str, Any], **kwargs: object) -> None:
        seen.append(changes)

    graph_changes_published.connect(receive)
    yield seen
    graph_changes_published.disconnect(receive)


def published_changes(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert publisher.flush(10)
    return [item for data in seen for item in data["changes"]]


def fact(content: str = "fact", momentum: float = 0.9) -> Node:
    return Node.objects.create(content=content, node_type="FACT", momentum=momentum)


@pytest.mark.django_db(transaction=True)
def test_create_tier_change_and_delete_are_recorded(changes: list[dict[str, Any]]) -> None:
    node = fact(momentum=0.9)
    assert published_changes(changes) == [change("created", node.pk, "FACT", "HOT")]
    changes.clear()
    node.momentum = 0.85  # the same tier: nothing to tell
    node.save()
    node.momentum = 0.5
    node.save()
    assert published_changes(changes) == [change("tier", node.pk, "FACT", "WARM", "HOT")]
    changes.clear()
    node_id = node.pk
    node.delete()
    assert published_changes(changes) == [change("deleted", node_id, "FACT", "WARM")]


@pytest.mark.django_db(transaction=True)
def test_tier_change_of_a_loaded_node_needs_no_extra_query(
    changes: list[dict[str, Any]], django_assert_num_queries: Any
) -> None:
    node_id = fact(momentum=0.2).pk
    assert publisher.flush(10)
    changes.clear()
    loaded = Node.objects.get(pk=node_id)
    loaded.momentum = 0.95
    with django_assert_num_queries(1):  # the UPDATE, nothing to read the old momentum
        loaded.save()
    assert published_changes(changes) == [change("tier", node_id, "FACT", "HOT", "COLD")]


@pytest.mark.django_db(transaction=True)
def test_a_save_that_leaves_the_momentum_out_reports_the_tier_change_when_it_is_saved(
    changes: list[dict[str, Any]],
) -> None:
    node = fact(momentum=0.9)
    assert publisher.flush(10)
    changes.clear()
    node.momentum = 0.1  # not saved by the next save: the row stays HOT
    node.content = "renamed"
    node.save(update_fields=["content"])
    assert Node.objects.get(pk=node.pk).tier == "HOT"
    assert published_changes(changes) == []  # no node changed tier
    node.save()  # now the row goes COLD
    assert published_changes(changes) == [change("tier", node.pk, "FACT", "COLD", "HOT")]


@pytest.mark.django_db(transaction=True)
def test_edge_saves_publish_statistics_but_no_node_change(
    changes: list[dict[str, Any]], published: list[dict[str, Any]]
) -> None:
    a, b = fact("a"), fact("b")
    assert publisher.flush(10)
    changes.clear()
    Edge.objects.create(source=a, target=b)
    assert published_changes(changes) == []
    assert published[-1]["edges"] == 1


@pytest.mark.django_db(transaction=True)
def test_rolled_back_changes_are_never_published(changes: list[dict[str, Any]]) -> None:
    with transaction.atomic():
        kept = fact("kept")
        try:
            with transaction.atomic():
                fact("gone with its savepoint")
                kept.momentum = 0.1
                kept.save()  # a tier change inside the savepoint: gone too
                raise ValueError
        except ValueError:
            pass
        after = fact("after the savepoint", momentum=0.5)
    assert published_changes(changes) == [
        change("created", kept.pk, "FACT", "HOT"),
        change("created", after.pk, "FACT", "WARM"),
    ]


@pytest.mark.django_db(transaction=True)
def test_released_savepoint_keeps_its_changes(changes: list[dict[str, Any]]) -> None:
    with transaction.atomic():
        outer = fact("outer")
        with transaction.atomic():
            inner = fact("inner")
    ids = [item["id"] for item in published_changes(changes)]
    assert ids == [outer.pk, inner.pk]


@override_settings(GRAPHAPP={"CHANGE_LIMIT": 5})
@pytest.mark.django_db(transaction=True)
def test_transaction_of_many_saves_publishes_a_summary(changes: list[dict[str, Any]]) -> None:
    with transaction.atomic():
        for i in range(300):
            fact(f"n{i}")
    assert publisher.flush(10)
    assert len(changes) == 1
    assert changes[0]["changes"] == []
    assert changes[0]["summary"] == {"created": 300}


@pytest.mark.django_db(transaction=True)
def test_bulk_operations_publish_counts(changes: list[dict[str, Any]]) -> None:
    nodes = [fact(f"n{i}", momentum=0.1) for i in range(3)]
    assert publisher.flush(10)
    changes.clear()
    operations.activate(Node.objects.filter(pk__in=[n.pk for n in nodes[:2]]))
    assert publisher.flush(10)
    operations.prune_below(0.2)
    assert publisher.flush(10)
    assert [data["summary"] for data in changes] == [{"updated": 2}, {"deleted": 1}]
    assert all(data["changes"] == [] for data in changes)
