"""Writers do not wait for each other: saving a node takes no lock on a shared row."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from graphapp.models import Edge, Node
from graphapp.publish import publisher

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_save_does_not_wait_for_another_open_transaction_that_saved() -> None:
    hub = Node.objects.create(content="shared neighbour", node_type="CONCEPT")
    saved, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                other = Node.objects.create(content="held open", node_type="FACT")
                Edge.objects.create(source=other, target=hub)
                saved.set()
                release.wait(10)
        finally:
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        assert saved.wait(10)
        # With a shared counter row (or a lock on the graph) this would block
        # until the other transaction ends; PostgreSQL gives up after 2 s.
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            mine = Node.objects.create(content="not waiting", node_type="FACT")
            Edge.objects.create(source=mine, target=hub)
    finally:
        release.set()
        writer.join(10)
    assert publisher.flush(10)
    assert Node.objects.count() == 3
    assert Edge.objects.filter(target=hub).count() == 2
