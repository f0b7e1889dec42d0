"""The graph's version, kept by the database: every committed write raises it, once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from graphapp import snapshots, versions
from graphapp.models import Edge, Node
from tests import services

pytestmark = pytest.mark.django_db(transaction=True)


def version() -> int:
    read = versions.read()
    assert read is not None, "this database keeps no version"
    return read


def node(content: str = "n") -> Node:
    return Node.objects.create(content=content, node_type="FACT", momentum=0.5)


def test_every_kind_of_write_raises_the_version() -> None:
    a, b = node("a"), node("b")
    seen = [version()]
    edge = Edge.objects.create(source=a, target=b)
    seen.append(version())
    edge.weight = 0.5
    edge.save()
    seen.append(version())
    Node.objects.filter(pk=a.pk).update(momentum=0.9)
    seen.append(version())
    Node.objects.bulk_create([Node(content="c", node_type="CODE")])
    seen.append(version())
    a.delete()  # cascades to the edge
    seen.append(version())
    assert seen == sorted(set(seen)), seen  # strictly increasing


def test_a_writer_outside_the_orm_raises_it_too() -> None:
    before = version()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO graphapp_node (content, node_type, momentum, created_at,"
            " last_accessed, decayed_at, metadata) VALUES ('raw', 'FACT', 0.5, %s, %s, %s, '{}')",
            ["2026-12-01 10:00:00+00"] * 3,
        )
    assert version() > before


def test_a_rolled_back_transaction_leaves_the_version_as_it_was() -> None:
    before = version()
    with transaction.atomic():
        node()
        transaction.set_rollback(True)
    assert version() == before


def test_a_rolled_back_savepoint_takes_its_raise_with_it_but_not_the_rest() -> None:
    before = version()
    with transaction.atomic():
        try:
            with transaction.atomic():
                node("first, then undone")
                raise ValueError
        except ValueError:
            pass
        node("kept")
    assert version() > before
    assert Node.objects.filter(content="kept").exists()


def test_reads_outside_graphapps_tables_leave_it_alone() -> None:
    node()
    before = version()
    Node.objects.count()
    list(Node.objects.all())
    assert version() == before


def test_a_snapshot_carries_the_version_of_the_state_it_counted() -> None:
    node()
    snapshot = snapshots.take()
    assert snapshot["version"] == version()
    assert snapshot["nodes"] == 1


def test_folding_keeps_the_version() -> None:
    for n in range(5):
        node(str(n))
    before = version()
    versions.fold()
    assert version() == before
    node("after")
    assert version() == before + 1


@pytest.mark.services
def test_postgresql_writers_do_not_wait_for_each_other() -> None:
    # Two transactions writing the graph share no row of the version's: the
    # second commits while the first is still open (lock_timeout would fail it).
    opened, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with transaction.atomic():
                node("first")
                opened.set()
                done.wait(10)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert opened.wait(10)
        before = version()
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '1s'")
            node("second")
        assert version() == before + 1
    finally:
        done.set()
        thread.join(10)
    assert not errors
    assert services.enabled()


def test_a_rebuilt_ledger_raises_the_version() -> None:
    # The statistics may change with no write to the graph's tables (a ledger
    # rebuilt after a load with triggers off): the hubs must see a new version.
    from graphapp import ledger

    node()
    before = version()
    ledger.rebuild()
    assert version() > before
