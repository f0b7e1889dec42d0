"""graphsite's SQLite takes the write lock when a transaction begins (W006).

graphapp's worker writes after every publication on a connection of its own. A
deferred transaction that had read first would then fail at once with
"database is locked" when it writes; an immediate one waits for the lock.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from graphapp import api
from graphapp.models import Edge, Node

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _sqlite_only() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only: this run's database is another")


def test_a_read_then_write_transaction_waits_for_another_connections_write() -> None:
    source = api.add_node("source", "FACT")
    target = api.add_node("target", "FACT")
    written, done = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def other_writer() -> None:
        # Like graphapp's worker: its own connection, a short write.
        try:
            with transaction.atomic():
                Node.objects.create(content="written meanwhile", node_type="FACT")
                written.set()
                done.wait(0.3)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)
        finally:
            written.set()
            connections.close_all()

    thread = threading.Thread(target=other_writer)
    thread.start()
    try:
        assert written.wait(5)
        # Reads the pair's edge, then writes it: the shape that deadlocks when deferred.
        api.connect(source, target, weight=0.5)
    finally:
        done.set()
        thread.join(10)
    assert failures == []
    assert Edge.objects.get(source=source, target=target).weight == 0.5
    assert Node.objects.filter(content="written meanwhile").exists()
