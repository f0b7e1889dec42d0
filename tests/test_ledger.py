"""graphapp.ledger: the per-node sums the database keeps (PostgreSQL, SQLite)
equal the edges' own, whatever wrote the edges, before and after they are folded."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction

from graphapp import ledger, stats, versions
from graphapp.models import Edge, Node
from graphapp.publish import publisher
from graphapp.stats import compute_stats

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _publications_done_before_the_database_goes() -> Iterator[None]:
    yield
    assert publisher.flush(10)


def on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def node(name: str = "n") -> Node:
    return Node.objects.create(content=name, node_type="FACT", momentum=0.5)


def direct() -> tuple[int, float]:
    """The edge count and the entanglement sum, grouped from the edges themselves."""
    others = float(max(Node.objects.count() - 1, 1))
    with connection.cursor() as cursor:
        cursor.execute(stats._entanglement_sql(connection), [others])
        edges, total = cursor.fetchone()
    return int(edges), float(total)


def kept() -> tuple[int, float]:
    """The same, from the ledger (folded rows and pending ones)."""
    return ledger.entanglement(max(Node.objects.count(), 2))


def ledger_rows() -> tuple[int, int]:
    """Per-node rows, and rows pending (PostgreSQL; SQLite keeps none)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {ledger.DEGREE}")
        (folded,) = cursor.fetchone()
        pending = 0
        if on_postgresql():
            cursor.execute(f"SELECT COUNT(*) FROM {ledger.DELTA}")
            (pending,) = cursor.fetchone()
    return int(folded), int(pending)


def edge_triggers() -> set[str]:
    with connection.cursor() as cursor:
        if on_postgresql():
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'graphapp_edge'::regclass"
                " AND NOT tgisinternal"
            )
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                " AND tbl_name = 'graphapp_edge'"
            )
        return {name for (name,) in cursor.fetchall()}


def test_the_triggers_are_there_after_every_migration() -> None:
    # A later migration that remakes the edge table on SQLite (Django copies it
    # to a new one, as migration 0006 does to add a constraint) drops them
    # silently: this fails until it adds them back.
    if on_postgresql():
        expected = {
            "graphapp_degree_insert_delete",
            "graphapp_degree_update",
            "graphapp_degree_truncate",
            "graphapp_version_edge",
        }
    else:
        expected = {
            *(f"graphapp_degree_{op}" for op in ("insert", "delete", "update")),
            *(f"graphapp_version_edge_{op}" for op in ("insert", "update", "delete")),
        }
    assert edge_triggers() == expected


@pytest.mark.django_db(transaction=True)  # PostgreSQL raises it once per transaction
def test_every_edge_write_still_raises_the_graph_version() -> None:
    a, b = node(), node()
    before = versions.read()
    edge = Edge.objects.create(source=a, target=b)
    after_insert = versions.read()
    Edge.objects.filter(pk=edge.pk).update(weight=0.5)
    after_update = versions.read()
    edge.delete()
    seen = [before, after_insert, after_update, versions.read()]
    assert all(isinstance(version, int) for version in seen), seen
    assert seen == sorted(set(seen)), seen  # strictly increasing


def nodes_with_edges() -> int:
    ends = set(Edge.objects.values_list("source_id", flat=True))
    return len(ends | set(Edge.objects.values_list("target_id", flat=True)))


def assert_ledger_matches_the_edges() -> None:
    edges, total = direct()
    assert kept() == (edges, pytest.approx(total, rel=1e-12, abs=1e-12))
    ledger.compact()
    assert kept() == (edges, pytest.approx(total, rel=1e-12, abs=1e-12))
    # Folded: one row per node that has an edge, none for the others, nothing pending.
    assert ledger_rows() == (nodes_with_edges(), 0)


def test_every_kind_of_edge_write_reaches_the_ledger() -> None:
    a, b, c, d, e, f = (node(name) for name in "abcdef")
    writes: list[tuple[str, Callable[[], object]]] = [
        ("create", lambda: Edge.objects.create(source=a, target=b, weight=0.5)),
        (
            "bulk_create",
            lambda: Edge.objects.bulk_create(
                [
                    Edge(source=a, target=c, weight=0.25),
                    Edge(source=b, target=c, weight=0.95),
                    Edge(source=c, target=a, weight=0.75),
                    Edge(source=d, target=a, weight=1.0),
                    Edge(source=e, target=d, weight=0.1),
                ]
            ),
        ),
        ("update weights", lambda: Edge.objects.filter(source=a).update(weight=0.9)),
        ("move a target", lambda: Edge.objects.filter(source=b, target=c).update(target=f)),
        ("move a source", lambda: Edge.objects.filter(source=e).update(source=f)),
        ("save changed", lambda: _reweigh(Edge.objects.get(source=c, target=a), 0.99)),
        ("delete one", lambda: Edge.objects.get(source=a, target=b).delete()),
        ("delete a node (cascade)", lambda: Node.objects.filter(pk=d.pk).delete()),
        ("raw SQL", lambda: _raw_edge(b, e, 0.3)),
        ("queryset delete", lambda: Edge.objects.filter(weight__lt=0.95).delete()),
    ]
    for name, write in writes:
        write()
        if on_postgresql():
            assert ledger_rows()[1] > 0, f"{name}: no pending row"
        assert_ledger_matches_the_edges()
    # Left: b -> f at 0.95 (moved from c) and c -> a at 0.99 (saved with a new weight).
    assert sorted(Edge.objects.values_list("weight", flat=True)) == [0.95, 0.99]


def test_a_save_that_moves_no_end_and_changes_no_weight_leaves_the_ledger_alone() -> None:
    a, b = node(), node()
    edge = Edge.objects.create(source=a, target=b, weight=0.5)
    ledger.compact()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ledger.DEGREE} ORDER BY node_id")
        before = cursor.fetchall()
        edge.relation = "depends_on"
        edge.save()  # an UPDATE of every column, ends and weight as they were
        cursor.execute(f"SELECT * FROM {ledger.DEGREE} ORDER BY node_id")
        assert cursor.fetchall() == before
    assert ledger_rows() == (2, 0)  # nothing pending either (PostgreSQL)


def _reweigh(edge: Edge, weight: float) -> None:
    edge.weight = weight
    edge.save()


def _raw_edge(source: Node, target: Node, weight: float) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO graphapp_edge (source_id, target_id, relation, weight, created_at)"
            " VALUES (%s, %s, 'relates_to', %s, CURRENT_TIMESTAMP)",
            [source.pk, target.pk, weight],
        )


def test_a_node_that_loses_its_last_edge_keeps_no_row_nor_weight_residue() -> None:
    a, b = node(), node()
    weights = [0.1, 0.2, 0.7]
    for weight in weights:
        Edge.objects.create(source=a, target=node(), weight=weight)
    Edge.objects.create(source=b, target=a, weight=1.0)
    ledger.compact()
    Edge.objects.filter(source=a).delete()
    ledger.compact()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT node_id, out_edges, in_edges, out_weight FROM {ledger.DEGREE}")
        rows = sorted(cursor.fetchall())
    # a keeps its incoming edge and no trace of 0.1 + 0.2 + 0.7 - 0.1 - 0.2 - 0.7.
    assert rows == sorted([(a.pk, 0, 1, 0.0), (b.pk, 1, 0, 1.0)])


def test_a_new_row_whose_outgoing_edges_came_and_went_in_one_window_has_no_residue() -> None:
    # The same, when the node had no row yet: nothing folded in between.
    a, b = node(), node()
    weights = [0.1, 0.7, 0.2, 0.001, 1.0]
    Edge.objects.create(source=b, target=a, weight=1.0)
    for weight in weights:
        Edge.objects.create(source=a, target=node(), weight=weight)
    Edge.objects.filter(source=a).delete()
    ledger.compact()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT out_edges, in_edges, out_weight FROM {ledger.DEGREE} WHERE node_id = %s",
            [a.pk],
        )
        assert cursor.fetchall() == [(0, 1, 0.0)]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_truncating_the_edges_empties_the_ledger() -> None:
    a, b = node(), node()
    Edge.objects.create(source=a, target=b)
    ledger.compact()
    Edge.objects.create(source=b, target=a)
    assert ledger_rows() == (2, 2)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE graphapp_edge")
    assert ledger_rows() == (0, 0)
    assert kept() == (0, 0.0)


def _write_skipping_triggers(source: Node, target: Node) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            _raw_edge(source, target, 0.5)
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


def test_rebuild_recomputes_whatever_the_ledger_held() -> None:
    a, b, c = node(), node(), node()
    Edge.objects.create(source=a, target=b, weight=0.5)
    Edge.objects.create(source=b, target=c, weight=0.25)
    ledger.compact()
    with connection.cursor() as cursor:  # a ledger gone wrong, however it did
        cursor.execute(f"UPDATE {ledger.DEGREE} SET out_edges = 7, out_weight = 9.0")
        cursor.execute(
            f"INSERT INTO {ledger.DEGREE} (node_id, out_edges, in_edges, out_weight)"
            " VALUES (%s, 1, 1, 1.0)",
            [c.pk + 1000],
        )
    assert kept() != direct()
    ledger.rebuild()
    assert_ledger_matches_the_edges()
    assert ledger_rows() == (3, 0)


@pytest.mark.services
def test_rebuild_catches_up_with_writes_that_skipped_the_triggers() -> None:
    a, b, c = node(), node(), node()
    Edge.objects.create(source=a, target=b)
    _write_skipping_triggers(b, c)
    assert kept()[0] == 1  # the ledger did not see it
    ledger.rebuild()
    assert_ledger_matches_the_edges()
    assert direct()[0] == 2
    assert ledger_rows() == (3, 0)


@pytest.mark.services
def test_graph_stats_rebuild_reports_the_edges_the_triggers_missed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = node(), node()
    _write_skipping_triggers(a, b)
    call_command("graph_stats", "--rebuild")
    assert '"edges": 1' in capsys.readouterr().out


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_writers_on_one_hub_node_never_wait_for_each_other() -> None:
    # What a counter updated in place by the triggers would get wrong: the second
    # writer would wait for the first one's commit on the hub's row.
    hub, x, y = node("hub"), node("x"), node("y")
    first_wrote = threading.Event()
    second_done = threading.Event()
    failures: list[BaseException] = []

    def first() -> None:
        try:
            with transaction.atomic():
                Edge.objects.create(source=x, target=hub)
                first_wrote.set()
                # Still open while the second writer commits.
                assert second_done.wait(10), "the second writer waited"
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
        finally:
            connections.close_all()

    def second() -> None:
        try:
            assert first_wrote.wait(10)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
                Edge.objects.create(source=y, target=hub)
            ledger.compact()  # folding does not wait for the open writer either
            second_done.set()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
            second_done.set()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert_ledger_matches_the_edges()
    assert direct()[0] == 2


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_and_foldings_lose_and_double_nothing() -> None:
    nodes = [node(str(i)) for i in range(12)]
    failures: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for step in range(1, 12):
                source, target = nodes[offset], nodes[(offset + step) % len(nodes)]
                Edge.objects.create(source=source, target=target, weight=step / 11)
                if step % 3 == 0:
                    Edge.objects.filter(source=source).order_by("pk").first().delete()
                ledger.compact()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert Edge.objects.count() == 4 * (11 - 3)
    assert_ledger_matches_the_edges()


@pytest.mark.django_db(transaction=True)
def test_without_the_ledger_the_edges_are_grouped_and_the_migration_fills_it() -> None:
    # As in a test database made without migrations, or a migration rolled back.
    call_command("migrate", "graphapp", "0003_relation_pattern_whole_string", verbosity=0)
    try:
        tables = connection.introspection.table_names()
        assert ledger.DEGREE not in tables
        assert ledger.DELTA not in tables
        assert not ledger.in_use()
        a, b, c = node(), node(), node()
        Edge.objects.bulk_create(
            [Edge(source=a, target=b, weight=0.5), Edge(source=b, target=c, weight=0.25)]
        )
        # a: degree 1, mean outgoing 0.5; b: degree 2, mean 0.25 (capped at 1);
        # c: degree 1, no outgoing edge. N - 1 = 2.
        expected = (1 / 2 * 1.5 + min(1.0, 2 / 2 * 1.25) + 1 / 2 * 1.0) / 3
        assert compute_stats()["avg_entanglement"] == round(expected, 3)
        assert compute_stats()["edges"] == 2
        with pytest.raises(CommandError, match="keeps no degree ledger"):
            call_command("graph_stats", "--rebuild")
    finally:
        call_command("migrate", "graphapp", verbosity=0)
    assert ledger.in_use()
    assert ledger_rows() == (3, 0)
    assert_ledger_matches_the_edges()
    Edge.objects.create(source=c, target=a)  # and the triggers are back
    assert_ledger_matches_the_edges()
