"""The graph_seed, graph_decay, graph_prune and graph_stats management commands.

Publishing happens after commit, in the publisher's own thread, which reads the
database through its own connection: these tests commit for real
(``transaction=True``). The commands wait until their publication is done
(``publish_now``), so the count of ``graph_stats_published`` is final when
``call_command`` returns.
"""

import datetime
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F
from django.db.models.signals import post_delete

from graphapp.models import Edge, Node
from graphapp.publish import publisher
from graphapp.stats import compute_stats
from tests.factories import T0
from tests.factories import node_at as node

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def settle(published: list[dict]) -> None:
    """Wait for the publications of the test's own set-up and forget them."""
    assert publisher.wait(10.0)
    published.clear()


def stats_fields(snapshot: dict) -> dict:
    return {key: snapshot[key] for key in ("nodes", "edges", "avg_entanglement", "tiers", "types")}


# -- graph_seed -------------------------------------------------------------


def test_graph_seed_creates_nodes_and_edges_and_publishes_once(published):
    out = run("graph_seed", "--nodes", "30", "--edges", "45", "--seed", "1")

    assert "Created 30 nodes and 45 edges." in out
    assert Node.objects.count() == 30
    assert Edge.objects.count() == 45
    assert not Edge.objects.filter(source=F("target")).exists()  # no loops
    assert len(published) == 1
    assert stats_fields(published[0]) == compute_stats()
    assert published[0]["nodes"] == 30
    assert published[0]["edges"] == 45


def test_graph_seed_default_is_two_edges_per_node(published):
    run("graph_seed", "--nodes", "10", "--seed", "3")

    assert Node.objects.count() == 10
    assert Edge.objects.count() == 20


def test_graph_seed_edges_join_only_the_new_nodes(published):
    old = node(0.5)

    run("graph_seed", "--nodes", "5", "--edges", "20", "--seed", "2")  # every ordered pair

    assert Edge.objects.count() == 20
    assert not Edge.objects.filter(source=old).exists()
    assert not Edge.objects.filter(target=old).exists()


def test_graph_seed_same_seed_gives_the_same_nodes(published):
    def fields(nodes):
        return [(n.content, n.node_type, n.momentum) for n in nodes]

    run("graph_seed", "--nodes", "8", "--edges", "0", "--seed", "42")
    first = fields(Node.objects.order_by("pk"))
    run("graph_seed", "--nodes", "8", "--edges", "0", "--seed", "42")
    second = fields(Node.objects.order_by("pk")[8:])

    assert first == second
    assert len(published) == 2  # once per run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "-1"], "--nodes: must be a whole number from 0 to 1,000,000"),
        (["--nodes", "5", "--edges", "-1"], "--edges: must be a whole number from 0 to"),
        (["--nodes", "3", "--edges", "7"], "at most 6 edges"),
        (["--nodes", "0", "--edges", "1"], "at most 0 edges"),
        (["--nodes", "many"], "--nodes: must be a whole number"),
        (["--nodes", "1000001"], "--nodes: must be a whole number"),
        (["--nodes", "5", "--seed", "x"], "--seed: must be a whole number"),
    ],
)
def test_graph_seed_bad_values_raise_and_change_nothing(published, args, message):
    node(0.5)
    settle(published)

    with pytest.raises(CommandError, match=message):
        run("graph_seed", *args)

    assert Node.objects.count() == 1
    assert Edge.objects.count() == 0
    assert published == []


# -- graph_decay ------------------------------------------------------------


def test_graph_decay_hours_decays_every_node_and_publishes_once(published):
    hot = node(0.85)
    warm = node(0.5)
    settle(published)

    out = run("graph_decay", "--hours", "2")

    assert "Decayed 2 nodes." in out
    # 0.85 - 0.05 * 2 = 0.75 (HOT -> WARM); 0.5 - 0.1 = 0.4 (still WARM)
    assert Node.objects.get(pk=hot.pk).momentum == pytest.approx(0.75)
    assert Node.objects.get(pk=warm.pk).momentum == pytest.approx(0.4)
    assert len(published) == 1
    assert published[0]["tiers"] == {"HOT": 0, "WARM": 2, "COLD": 0}


def test_graph_decay_without_hours_uses_the_elapsed_time(published):
    # Decayed through T0, which is long past: the floor is reached.
    old = node(0.9, at=T0)
    settle(published)

    run("graph_decay")

    assert Node.objects.get(pk=old.pk).momentum == pytest.approx(0.01)
    assert len(published) == 1


@pytest.mark.parametrize("hours", ["-1", "-0.5", "inf", "nan", "soon", "1e12", "8761"])
def test_graph_decay_bad_hours_raise_and_change_nothing(published, hours):
    n = node(0.9)
    settle(published)

    with pytest.raises(CommandError, match="hours"):
        run("graph_decay", f"--hours={hours}")

    n_after = Node.objects.get(pk=n.pk)
    assert n_after.momentum == 0.9
    assert n_after.decayed_at == T0
    assert published == []


# -- graph_prune ------------------------------------------------------------


def test_graph_prune_deletes_below_and_publishes_once(published):
    low = node(0.1)
    kept = node(0.5)
    top = node(0.9)
    Edge.objects.create(source=low, target=kept)
    Edge.objects.create(source=top, target=low)
    survivor = Edge.objects.create(source=top, target=kept)
    settle(published)

    out = run("graph_prune", "--below", "0.5")

    assert "Pruned 1 nodes below 0.5." in out
    assert set(Node.objects.values_list("pk", flat=True)) == {kept.pk, top.pk}
    assert list(Edge.objects.values_list("pk", flat=True)) == [survivor.pk]
    assert len(published) == 1
    assert published[0]["nodes"] == 2
    assert published[0]["edges"] == 1


@pytest.mark.parametrize("below", ["0", "-0.2", "1.01", "nan", "low"])
def test_graph_prune_out_of_range_raises_and_deletes_nothing(published, below):
    node(0.1)
    node(0.9)
    settle(published)

    with pytest.raises(CommandError, match="below"):
        run("graph_prune", f"--below={below}")

    assert Node.objects.count() == 2
    assert published == []


def test_graph_prune_requires_below():
    node(0.1)

    with pytest.raises(CommandError, match="below"):
        run("graph_prune")

    assert Node.objects.count() == 1


def test_graph_prune_sends_no_post_delete_per_row(published):
    run("graph_seed", "--nodes", "500", "--edges", "1000", "--seed", "5")
    doomed = Node.objects.filter(momentum__lt=0.9).count()
    assert doomed > 300  # about 450 of 500 momenta are below 0.9
    deletes: list[type] = []

    def count_delete(sender: type, **kwargs: object) -> None:
        deletes.append(sender)

    post_delete.connect(count_delete, sender=Node)
    post_delete.connect(count_delete, sender=Edge)
    try:
        out = run("graph_prune", "--below", "0.9")
    finally:
        post_delete.disconnect(count_delete, sender=Node)
        post_delete.disconnect(count_delete, sender=Edge)

    assert f"Pruned {doomed} nodes below 0.9." in out
    assert deletes == []
    assert Node.objects.count() == 500 - doomed
    assert not Node.objects.filter(momentum__lt=0.9).exists()
    # No edge is left pointing at or from a deleted node.
    assert Edge.objects.exclude(source__in=Node.objects.all()).count() == 0
    assert Edge.objects.exclude(target__in=Node.objects.all()).count() == 0
    assert len(published) == 2  # once for the seed, once for the prune


# -- graph_stats ------------------------------------------------------------


def test_graph_stats_prints_the_statistics_as_json(published):
    a, b, c = node(0.9), node(0.5), node(0.1)
    Edge.objects.create(source=a, target=b, weight=0.5)
    Edge.objects.create(source=c, target=a, weight=1.0)
    settle(published)

    printed = json.loads(run("graph_stats"))

    assert stats_fields(printed) == compute_stats()
    assert printed["nodes"] == 3
    assert printed["edges"] == 2
    assert printed["type"] == "update"
    assert isinstance(printed["version"], int)
    assert datetime.datetime.fromisoformat(printed["at"])
    assert published == []  # it prints, it does not publish


def test_graph_stats_rebuild_recomputes_the_ledger_then_prints(published):
    a, b = node(0.9), node(0.5)
    Edge.objects.create(source=a, target=b, weight=0.5)
    settle(published)
    with connection.cursor() as cursor:  # a ledger gone wrong
        cursor.execute("DELETE FROM graphapp_degree")

    printed = json.loads(run("graph_stats", "--rebuild"))

    assert printed["edges"] == 1
    assert stats_fields(printed) == compute_stats()
    assert published == []


def test_graph_stats_on_an_empty_graph(published):
    out = run("graph_stats", "--indent", "0")
    printed = json.loads(out)

    assert out.count("\n") == 1  # --indent 0: one line

    assert stats_fields(printed) == compute_stats()
    assert printed["nodes"] == 0
    assert printed["tiers"] == {"HOT": 0, "WARM": 0, "COLD": 0}
