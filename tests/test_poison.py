"""Poison cannot stop the stream (issue 12, guarantee 4).

Edge weights are finite and in [0, 1], momentum finite and in [0, 1], at every
entrance: model validation, the Python API, the admin, the import, the
commands, and the database's CHECK constraints. And whatever the rows hold
(values past the constraint, written before migration 0006 or by a program
that dropped it, or written straight into the degree ledger), the statistics
are finite and valid JSON, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import DataError, IntegrityError, connection, transaction
from django.test import Client

from graphapp import ledger, strictjson
from graphapp.models import Edge, Node
from graphapp.stats import compute_stats
from tests.test_ledger import assert_ledger_matches_the_edges, direct, kept

pytestmark = pytest.mark.django_db

NAN, INF = float("nan"), float("inf")
# Past the bounds; NaN and the infinities are not numbers at all.
POISON = [1e308, -1e308, INF, -INF, NAN, -0.5, 1.5, -5e-324]


def on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def storable(value: float) -> None:
    """Skip NaN on SQLite, which stores it as NULL: the float columns refuse it
    (test_sqlite_refuses_a_nan_weight_whatever_the_constraints)."""
    if math.isnan(value) and not on_postgresql():
        pytest.skip("SQLite stores NaN as NULL, which the column refuses")


def node(name: str = "n", momentum: float = 0.5) -> Node:
    return Node.objects.create(content=name, node_type="FACT", momentum=momentum)


def clamped(weight: float) -> float:
    """A weight as the statistics count it: clamped to [0, 1], NaN as the default 1."""
    return 1.0 if math.isnan(weight) else min(1.0, max(0.0, weight))


def expected_average(edges: list[tuple[Node, Node, float]]) -> float:
    """The average entanglement worked out in Python, each weight clamped."""
    nodes = Node.objects.count()
    degree: Counter[int] = Counter()
    outgoing: Counter[int] = Counter()
    weights: defaultdict[int, float] = defaultdict(float)
    for source, target, weight in edges:
        degree[source.pk] += 1
        degree[target.pk] += 1
        outgoing[source.pk] += 1
        weights[source.pk] += clamped(weight)
    total = sum(
        min(1.0, degree[n] / (nodes - 1) * (1 + (weights[n] / outgoing[n] if outgoing[n] else 0)))
        for n in degree
    )
    return round(total / nodes, 3)


def assert_valid(stats: dict[str, Any]) -> None:
    """Finite, in range, and encodable as JSON without NaN or Infinity."""
    json.dumps(stats, allow_nan=False)
    assert 0.0 <= stats["avg_entanglement"] <= 1.0


@contextlib.contextmanager
def past_the_constraint() -> Iterator[None]:
    """Writes that get past the weight's CHECK constraint, as rows written before
    migration 0006 or by a program that dropped the constraint."""
    with connection.cursor() as cursor:
        if on_postgresql():
            # Undone with the test's transaction.
            cursor.execute("ALTER TABLE graphapp_edge DROP CONSTRAINT graphapp_edge_weight_0_1")
            yield
            return
        cursor.execute("PRAGMA ignore_check_constraints = ON")
        try:
            yield
        finally:
            cursor.execute("PRAGMA ignore_check_constraints = OFF")


def raw_edge(source: Node, target: Node, weight: float) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO graphapp_edge (source_id, target_id, relation, weight, created_at)"
            " VALUES (%s, %s, 'relates_to', %s, CURRENT_TIMESTAMP)",
            [source.pk, target.pk, weight],
        )


def graph_with(weight: float) -> tuple[list[Node], list[tuple[Node, Node, float]]]:
    """Five nodes; a has two edges of ``weight`` (a sum of two: 1e308 + 1e308 overflows),
    b one of 0.5. Written with SQL past the constraint."""
    a, b, c, d, e = (node(name) for name in "abcde")
    edges = [(a, b, weight), (a, c, weight), (b, c, 0.5), (d, a, 0.25)]
    with past_the_constraint():
        for source, target, w in edges:
            raw_edge(source, target, w)
    return [a, b, c, d, e], edges


# -- The database refuses poison --------------------------------------------


@pytest.mark.parametrize("value", POISON, ids=repr)
def test_the_database_refuses_a_poison_weight_written_with_sql(value: float) -> None:
    a, b = node(), node()
    with pytest.raises(IntegrityError), transaction.atomic():
        raw_edge(a, b, value)
    assert not Edge.objects.exists()


@pytest.mark.parametrize("value", POISON, ids=repr)
def test_the_database_refuses_a_poison_weight_saved_through_the_orm(value: float) -> None:
    a, b, c = node(), node(), node()
    kept_edge = Edge.objects.create(source=a, target=b, weight=0.5)
    with pytest.raises(IntegrityError), transaction.atomic():
        Edge.objects.create(source=b, target=c, weight=value)
    with pytest.raises(IntegrityError), transaction.atomic():
        Edge.objects.bulk_create([Edge(source=c, target=a, weight=value)])
    with pytest.raises(IntegrityError), transaction.atomic():
        Edge.objects.filter(pk=kept_edge.pk).update(weight=value)
    assert list(Edge.objects.values_list("weight", flat=True)) == [0.5]


@pytest.mark.parametrize("value", [NAN, INF, -INF, 1e308, -1e308, 1.5, -0.5], ids=repr)
def test_the_database_refuses_a_poison_momentum(value: float) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Node.objects.create(content="n", node_type="FACT", momentum=value)
    kept_node = node(momentum=0.5)
    with pytest.raises(IntegrityError), transaction.atomic():
        Node.objects.filter(pk=kept_node.pk).update(momentum=value)
    assert list(Node.objects.values_list("momentum", flat=True)) == [0.5]


def test_sqlite_refuses_a_nan_weight_whatever_the_constraints() -> None:
    if on_postgresql():
        pytest.skip("PostgreSQL stores NaN; its CHECK constraint refuses it")
    a, b = node(), node()
    with (
        past_the_constraint(),
        pytest.raises(IntegrityError, match="NOT NULL"),
        transaction.atomic(),
    ):
        raw_edge(a, b, NAN)
    assert not Edge.objects.exists()


# -- The statistics stay finite whatever the rows hold ------------------------


@pytest.mark.parametrize("value", POISON, ids=repr)
def test_statistics_stay_finite_whatever_the_edges_hold(value: float) -> None:
    storable(value)
    (a, *_), edges = graph_with(value)

    stats = compute_stats()
    assert_valid(dict(stats))
    assert stats["edges"] == 4
    assert stats["avg_entanglement"] == expected_average(edges)
    # The ledger and a fresh grouping of the edges count the same clamped weights.
    assert kept() == (4, pytest.approx(direct()[1], rel=1e-12))
    if on_postgresql():
        ledger.compact()  # the fold sums the same rows
        assert compute_stats() == stats

    # Deleting the poisoned edges is enough: nothing of them stays in the ledger.
    Edge.objects.filter(source=a).delete()
    stats = compute_stats()
    assert_valid(dict(stats))
    assert stats["avg_entanglement"] == expected_average([e for e in edges if e[0] != a])
    assert_ledger_matches_the_edges()


@pytest.mark.parametrize("value", POISON, ids=repr)
def test_a_poisoned_edge_can_be_reweighed_and_deleted(value: float) -> None:
    storable(value)
    (a, b, *_), edges = graph_with(value)
    edge = Edge.objects.get(source=a, target=b)
    edge.weight = 0.75
    edge.save()
    assert compute_stats()["avg_entanglement"] == expected_average(
        [(a, b, 0.75), *(e for e in edges if e[:2] != (a, b))]
    )
    Edge.objects.filter(weight=0.75).delete()
    Edge.objects.filter(source=a).delete()
    assert_ledger_matches_the_edges()


def test_a_tiny_weight_does_not_underflow_the_statistics() -> None:
    # Within the bounds: PostgreSQL raises "value out of range: underflow" for a
    # quotient that rounds to 0, as 5e-324 / 2 does.
    a, b, c = node(), node(), node()
    Edge.objects.create(source=a, target=b, weight=5e-324)
    Edge.objects.create(source=a, target=c, weight=0.0)
    stats = compute_stats()
    assert_valid(dict(stats))
    assert stats["avg_entanglement"] == round((1 + 0.5 + 0.5) / 3, 3)
    if on_postgresql():
        ledger.compact()
        assert compute_stats() == stats


def _ledger_rows_of(node_pk: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {ledger.DEGREE} WHERE node_id = %s", [node_pk])
        assert cursor.fetchone()[0] == 1


@pytest.mark.parametrize("value", POISON, ids=repr)
def test_statistics_stay_finite_whatever_the_ledger_holds(value: float) -> None:
    storable(value)
    a, b, c = node(), node(), node()
    Edge.objects.create(source=a, target=b, weight=0.5)
    Edge.objects.create(source=a, target=c, weight=0.5)
    ledger.compact()
    _ledger_rows_of(a.pk)
    with connection.cursor() as cursor:
        # Leftovers, however they came: a folded sum and, on PostgreSQL, pending rows.
        cursor.execute(f"UPDATE {ledger.DEGREE} SET out_weight = %s", [value])
        if on_postgresql():
            for out_edges in (1, 1, -1, 0):
                cursor.execute(
                    f"INSERT INTO {ledger.DELTA} (node_id, out_edges, in_edges, out_weight)"
                    " VALUES (%s, %s, 0, %s)",
                    [a.pk, out_edges, value],
                )

    assert_valid(dict(compute_stats()))
    if on_postgresql():
        assert ledger.compact() == 1
        assert_valid(dict(compute_stats()))
    ledger.rebuild()
    assert compute_stats()["avg_entanglement"] == expected_average([(a, b, 0.5), (a, c, 0.5)])


@pytest.mark.parametrize("value", POISON, ids=repr)
def test_statistics_stay_finite_without_the_ledger(
    value: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where the ledger's table is missing, the edges are grouped at every snapshot.
    storable(value)
    _, edges = graph_with(value)
    monkeypatch.setattr(ledger, "in_use", lambda using="default": False)
    stats = compute_stats()
    assert_valid(dict(stats))
    assert stats["avg_entanglement"] == expected_average(edges)


def test_a_non_finite_sum_is_an_error_rather_than_json_without_meaning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The last guard, for a database that returns one anyway.
    node(), node()
    monkeypatch.setattr(ledger, "entanglement", lambda nodes, using="default": (1, -INF))
    with pytest.raises(DataError, match="not a finite number"):
        compute_stats()


@pytest.mark.parametrize("value", [1e308, -INF, NAN], ids=repr)
def test_the_stats_api_answers_valid_json_whatever_the_edges_hold(value: float) -> None:
    storable(value)
    _, edges = graph_with(value)
    user = User.objects.create_user("viewer")
    user.user_permissions.add(*Permission.objects.filter(codename="view_node"))
    client = Client()
    client.force_login(user)
    answer = client.get("/graph/api/stats/")
    assert answer.status_code == 200
    snapshot = strictjson.loads(answer.content)  # no NaN, no Infinity
    assert snapshot["avg_entanglement"] == expected_average(edges)


# -- Migration 0006: rows out of range before it ------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_clamps_poison_rows_and_rebuilds_the_ledger() -> None:
    call_command("migrate", "graphapp", "0005_graph_version", verbosity=0)
    try:
        weights = [0.5, 1.5, -0.5, 1e308, -1e308, INF, -INF, *([NAN] if on_postgresql() else [])]
        # One source per edge: SQLite's triggers of migration 0004 summed the
        # weights as they came, and one node's inf - inf is a NULL they refuse.
        targets = [node(f"t{index}") for index in range(2)]
        sources = [node(f"s{index}") for index in range(len(weights))]
        for source, weight in zip(sources, weights, strict=True):
            raw_edge(source, targets[0], weight)
            raw_edge(source, targets[1], weight)
    finally:
        call_command("migrate", "graphapp", verbosity=0)
    stored = Edge.objects.order_by("source_id", "target_id").values_list("weight", flat=True)
    assert list(stored) == [clamped(weight) for weight in weights for _ in targets]
    assert_ledger_matches_the_edges()
    assert_valid(dict(compute_stats()))
    Edge.objects.filter(source=sources[0]).delete()  # and the triggers follow
    assert_ledger_matches_the_edges()
