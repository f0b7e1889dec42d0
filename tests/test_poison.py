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
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import DataError, IntegrityError, connection, transaction
from django.test import Client

from graphapp import api, ledger, strictjson
from graphapp.interchange import ImportFileError, import_graph
from graphapp.models import Edge, Node
from graphapp.publish import publisher
from graphapp.stats import compute_stats
from tests.factories import T0, node_at
from tests.test_ledger import assert_ledger_matches_the_edges, direct, kept

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _publications_done_before_the_database_goes() -> Iterator[None]:
    yield
    assert publisher.flush(10)


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


def restore_the_constraint() -> None:
    """After a test that committed rows past it (PostgreSQL; SQLite's pragma ends
    with ``past_the_constraint``)."""
    if not on_postgresql():
        return
    Edge.objects.exclude(weight__gte=0.0, weight__lte=1.0).delete()  # NaN too
    (constraint,) = (c for c in Edge._meta.constraints if c.name == "graphapp_edge_weight_0_1")
    with connection.schema_editor() as editor:
        editor.add_constraint(Edge, constraint)


@pytest.mark.django_db(transaction=True)  # the view may read through a connection of its own
@pytest.mark.parametrize("value", [1e308, -INF, NAN], ids=repr)
def test_the_stats_api_answers_valid_json_whatever_the_edges_hold(value: float) -> None:
    storable(value)
    user = User.objects.create_user("viewer")
    user.user_permissions.add(*Permission.objects.filter(codename="view_node"))
    client = Client()
    client.force_login(user)
    try:
        _, edges = graph_with(value)
        answer = client.get("/graph/api/stats/")
        assert answer.status_code == 200
        snapshot = strictjson.loads(answer.content)  # no NaN, no Infinity
        assert snapshot["avg_entanglement"] == expected_average(edges)
    finally:
        restore_the_constraint()


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


# -- Every entrance refuses poison, with the field named and nothing saved ----------

BAD_WEIGHTS = [NAN, INF, -INF, 1e308, -1e308, -0.5, 1.000001, -5e-324]
BAD_MOMENTA = [NAN, INF, -INF, 1e308, -1e308, -0.5, 1.5]


@pytest.mark.parametrize("value", BAD_WEIGHTS, ids=repr)
def test_model_validation_names_a_poison_weight(value: float) -> None:
    a, b = node(), node()
    with pytest.raises(ValidationError) as refused:
        Edge(source=a, target=b, weight=value).full_clean()
    assert set(refused.value.message_dict) == {"weight"}


@pytest.mark.parametrize("value", BAD_MOMENTA, ids=repr)
def test_model_validation_names_a_poison_momentum(value: float) -> None:
    with pytest.raises(ValidationError) as refused:
        Node(content="n", node_type="FACT", momentum=value).full_clean()
    assert set(refused.value.message_dict) == {"momentum"}


def test_nan_is_refused_as_not_finite() -> None:
    # MinValueValidator and MaxValueValidator alone let NaN through.
    with pytest.raises(ValidationError, match="finite"):
        Node(content="n", node_type="FACT", momentum=NAN).full_clean()


@pytest.mark.parametrize("value", [0.0, 5e-324, 0.5, 1.0], ids=repr)
def test_every_weight_within_the_bounds_is_kept_exactly(value: float) -> None:
    a, b = node(), node()
    api.connect(a, b, weight=value)
    assert Edge.objects.get().weight == value


@pytest.mark.parametrize("value", BAD_WEIGHTS, ids=repr)
def test_api_connect_refuses_a_poison_weight_and_saves_nothing(value: float) -> None:
    a, b, c = node(), node(), node()
    api.connect(a, b, weight=0.5)
    for source, target in ((a, b), (b, c)):  # an update, and a new edge
        with pytest.raises(ValidationError) as refused:
            api.connect(source, target, weight=value)
        assert set(refused.value.message_dict) == {"weight"}
    assert list(Edge.objects.values_list("source", "target", "weight")) == [(a.pk, b.pk, 0.5)]


@pytest.mark.parametrize("value", BAD_MOMENTA, ids=repr)
def test_api_add_node_refuses_a_poison_momentum_and_saves_nothing(value: float) -> None:
    with pytest.raises(ValidationError) as refused:
        api.add_node("a fact", "FACT", momentum=value)
    assert set(refused.value.message_dict) == {"momentum"}
    assert not Node.objects.exists()


@pytest.mark.parametrize("hours", [NAN, INF, -INF, -1.0, 1e12, 24 * 365 + 1], ids=repr)
def test_api_decay_refuses_hours_it_cannot_apply_and_changes_nothing(hours: float) -> None:
    kept_node = node_at(0.9)
    with pytest.raises(ValueError, match="hours must be a finite number from 0 to 8760"):
        api.decay(hours=hours)
    kept_node.refresh_from_db()
    assert (kept_node.momentum, kept_node.decayed_at) == (0.9, T0)


def test_api_decay_takes_a_year_of_hours() -> None:
    node(momentum=0.9)
    assert api.decay(hours=24 * 365) == 1
    assert Node.objects.get().momentum == 0.01


@pytest.fixture
def admin_client_() -> Client:
    user = User.objects.create_superuser("boss", password="x")
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("text", ["1e308", "-1e308", "inf", "nan", "-0.5", "1.5", "1e400"])
def test_the_admin_refuses_a_poison_weight_and_saves_nothing(
    admin_client_: Client, text: str
) -> None:
    a, b = node(), node()
    answer = admin_client_.post(
        "/admin/graphapp/edge/add/",
        {"source": a.pk, "target": b.pk, "relation": "relates_to", "weight": text},
    )
    assert answer.status_code == 200  # the form again, with its errors
    assert set(answer.context["adminform"].form.errors) == {"weight"}
    assert not Edge.objects.exists()


def test_the_admin_number_inputs_carry_the_bounds(admin_client_: Client) -> None:
    edge_form = admin_client_.get("/admin/graphapp/edge/add/").content.decode()
    assert 'name="weight" value="1.0" min="0.0" max="1.0" step="any"' in edge_form
    node_form = admin_client_.get("/admin/graphapp/node/add/").content.decode()
    assert 'name="momentum" value="1.0" min="0.0" max="1.0" step="any"' in node_form
    # The edge inlines of a node's page too.
    a = node()
    page = admin_client_.get(f"/admin/graphapp/node/{a.pk}/change/").content.decode()
    assert 'name="outgoing-__prefix__-weight" value="1.0" min="0.0" max="1.0" step="any"' in page


@pytest.mark.parametrize("text", ["nan", "inf", "1e308", "-0.5", "1.5"])
def test_the_admin_refuses_a_poison_momentum_and_saves_nothing(
    admin_client_: Client, text: str
) -> None:
    inlines = {
        f"{prefix}-{key}": value
        for prefix in ("outgoing", "incoming")
        for key, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
    }
    answer = admin_client_.post(
        "/admin/graphapp/node/add/",
        {"content": "x", "node_type": "FACT", "momentum": text, "metadata": "{}", **inlines},
    )
    assert answer.status_code == 200
    assert set(answer.context["adminform"].form.errors) == {"momentum"}
    assert not Node.objects.exists()


def graph_file(weight: object = 0.5, momentum: object = 0.5) -> dict[str, Any]:
    record = {"content": "c", "node_type": "FACT", "momentum": momentum, "metadata": {}}
    return {
        "nodes": [{"id": key, **record, "created_at": 0, "last_accessed": 0} for key in ("a", "b")],
        "edges": [
            {"source_id": "a", "target_id": "b", "relation": "x", "weight": weight, "created_at": 0}
        ],
    }


@pytest.mark.parametrize("value", [*BAD_WEIGHTS, 10**400], ids=repr)
def test_import_refuses_a_poison_weight_and_imports_nothing(value: float) -> None:
    with pytest.raises(ImportFileError, match=r"^edges\[0\]\.weight: ") as refused:
        import_graph(graph_file(weight=value))
    assert refused.value.where == "edges[0].weight"
    assert not Node.objects.exists()


@pytest.mark.parametrize("value", [*BAD_MOMENTA, 10**400], ids=repr)
def test_import_refuses_a_poison_momentum_and_imports_nothing(value: float) -> None:
    with pytest.raises(ImportFileError, match=r"^nodes\[0\]\.momentum: "):
        import_graph(graph_file(momentum=value))
    assert not Node.objects.exists()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e308", "-1e308", "1.5"])
def test_graph_import_refuses_a_poison_weight_in_a_file(tmp_path: Path, literal: str) -> None:
    # As CodeDreamer's Python writes the file: NaN and Infinity as bare literals.
    text = json.dumps(graph_file(weight="WEIGHT")).replace('"WEIGHT"', literal)
    path = tmp_path / "graph.json"
    path.write_text(text)
    with pytest.raises(CommandError, match=r"edges\[0\]\.weight: .*nothing was imported"):
        call_command("graph_import", str(path))
    assert not Node.objects.exists()
