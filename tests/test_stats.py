"""graphapp.stats.compute_stats against graphs worked out by hand.

Entanglement of a node: 0 when N <= 1, else min(1, degree / (N - 1) * (1 + w)),
where degree counts the node's edges in both directions and w is the mean weight
of its outgoing edges (0 when it has none). avg_entanglement is the mean over all
nodes, rounded to 3 places.
"""

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from graphapp import stats as stats_module
from graphapp.models import Edge, Node, NodeType
from graphapp.publish import publisher
from graphapp.stats import compute_stats

pytestmark = pytest.mark.django_db

NO_TIERS = {"HOT": 0, "WARM": 0, "COLD": 0}
NO_TYPES = {"FACT": 0, "CONCEPT": 0, "CODE": 0, "DREAM": 0, "ENTITY": 0}


def node(momentum: float = 0.5, node_type: str = NodeType.FACT) -> Node:
    return Node.objects.create(content="n", node_type=node_type, momentum=momentum)


def edge(source: Node, target: Node, weight: float = 1.0) -> Edge:
    return Edge.objects.create(source=source, target=target, weight=weight)


def test_compute_stats_empty_graph_has_every_key_at_zero():
    assert compute_stats() == {
        "nodes": 0,
        "edges": 0,
        "avg_entanglement": 0.0,
        "tiers": NO_TIERS,
        "types": NO_TYPES,
    }


def test_compute_stats_one_node():
    node(momentum=0.9, node_type=NodeType.DREAM)

    assert compute_stats() == {
        "nodes": 1,
        "edges": 0,
        "avg_entanglement": 0.0,
        "tiers": NO_TIERS | {"HOT": 1},
        "types": NO_TYPES | {"DREAM": 1},
    }


def test_compute_stats_one_node_with_a_self_loop_has_no_entanglement():
    # N = 1, so entanglement is 0 whatever the edges (no division by N - 1 = 0).
    lonely = node(momentum=0.1, node_type=NodeType.CODE)
    edge(lonely, lonely, weight=0.7)

    assert compute_stats() == {
        "nodes": 1,
        "edges": 1,
        "avg_entanglement": 0.0,
        "tiers": NO_TIERS | {"COLD": 1},
        "types": NO_TYPES | {"CODE": 1},
    }


def test_compute_stats_nodes_without_edges():
    # Every degree is 0, so every entanglement is 0.
    node(momentum=1.0, node_type=NodeType.FACT)
    node(momentum=0.5, node_type=NodeType.FACT)
    node(momentum=0.2, node_type=NodeType.ENTITY)

    assert compute_stats() == {
        "nodes": 3,
        "edges": 0,
        "avg_entanglement": 0.0,
        "tiers": {"HOT": 1, "WARM": 1, "COLD": 1},
        "types": NO_TYPES | {"FACT": 2, "ENTITY": 1},
    }


def test_compute_stats_node_with_only_incoming_edges_has_no_outgoing_weight():
    # N = 4, N - 1 = 3. Edges: a -> c (0.5), b -> c (1.0); d is isolated.
    #   a: degree 1, w = 0.5  -> 1/3 * 1.5 = 0.5
    #   b: degree 1, w = 1.0  -> 1/3 * 2.0 = 0.6667
    #   c: degree 2, w = 0    -> 2/3 * 1.0 = 0.6667 (only incoming: w is 0, not
    #                            the mean of the incoming weights, 0.75)
    #   d: degree 0           -> 0
    # mean = (0.5 + 0.6667 + 0.6667 + 0) / 4 = 1.8333 / 4 = 0.45833 -> 0.458
    a, b, c, _d = node(), node(), node(), node()
    edge(a, c, weight=0.5)
    edge(b, c, weight=1.0)

    stats = compute_stats()

    assert stats["nodes"] == 4
    assert stats["edges"] == 2
    assert stats["avg_entanglement"] == 0.458


def test_compute_stats_degree_counts_both_directions():
    # N = 5, N - 1 = 4. Edges: a -> b (0.2), b -> a (0.4); c, d, e isolated.
    #   a: degree 2 (one out, one in), w = 0.2 -> 2/4 * 1.2 = 0.6
    #   b: degree 2 (one out, one in), w = 0.4 -> 2/4 * 1.4 = 0.7
    #   c, d, e: 0
    # mean = 1.3 / 5 = 0.26  (counting outgoing edges only would give 0.13)
    a, b = node(), node()
    node(), node(), node()
    edge(a, b, weight=0.2)
    edge(b, a, weight=0.4)

    stats = compute_stats()

    assert stats["edges"] == 2
    assert stats["avg_entanglement"] == 0.26


def test_compute_stats_caps_each_node_at_one():
    # N = 3, N - 1 = 2. Edges: a -> b (1.0), a -> c (0.5).
    #   a: degree 2, w = (1.0 + 0.5) / 2 = 0.75 -> 2/2 * 1.75 = 1.75, capped to 1
    #   b: degree 1, w = 0                      -> 1/2 * 1.0 = 0.5
    #   c: degree 1, w = 0                      -> 1/2 * 1.0 = 0.5
    # mean = (1 + 0.5 + 0.5) / 3 = 0.6667 -> 0.667  (uncapped: 2.75/3 = 0.917)
    a, b, c = node(), node(), node()
    edge(a, b, weight=1.0)
    edge(a, c, weight=0.5)

    stats = compute_stats()

    assert stats["edges"] == 2
    assert stats["avg_entanglement"] == 0.667


def test_compute_stats_every_node_capped_gives_exactly_one():
    # N = 2, N - 1 = 1. Edges: a -> b (0.5), b -> a (0.5).
    #   a: degree 2, w = 0.5 -> 2/1 * 1.5 = 3.0, capped to 1
    #   b: the same          -> 1
    # mean = 1.0, never more.
    a, b = node(), node()
    edge(a, b, weight=0.5)
    edge(b, a, weight=0.5)

    assert compute_stats()["avg_entanglement"] == 1.0


def test_compute_stats_rounds_average_to_three_places():
    # N = 3, N - 1 = 2. Edge: a -> b (0.2); c isolated.
    #   a: degree 1, w = 0.2 -> 1/2 * 1.2 = 0.6
    #   b: degree 1, w = 0   -> 1/2 * 1.0 = 0.5
    #   c: 0
    # mean = 1.1 / 3 = 0.366666... -> 0.367
    a, b = node(), node()
    node()
    edge(a, b, weight=0.2)

    average = compute_stats()["avg_entanglement"]

    assert average == 0.367
    assert average == round(average, 3)


def test_compute_stats_tier_boundaries():
    # HOT when momentum >= 0.8, WARM when >= 0.4, else COLD; the bounds belong
    # to the higher tier.
    for momentum in (1.0, 0.8):  # HOT
        node(momentum=momentum)
    for momentum in (0.7999, 0.4):  # WARM
        node(momentum=momentum)
    for momentum in (0.3999, 0.01, 0.0):  # COLD
        node(momentum=momentum)

    assert compute_stats()["tiers"] == {"HOT": 2, "WARM": 2, "COLD": 3}


def test_compute_stats_counts_per_type_with_absent_types_at_zero():
    node(node_type=NodeType.CONCEPT)
    node(node_type=NodeType.CONCEPT)
    node(node_type=NodeType.CODE)

    stats = compute_stats()

    assert stats["types"] == {"FACT": 0, "CONCEPT": 2, "CODE": 1, "DREAM": 0, "ENTITY": 0}
    assert stats["tiers"] == {"HOT": 0, "WARM": 3, "COLD": 0}


def _queries_for_stats() -> int:
    with CaptureQueriesContext(connection) as queries:
        compute_stats()
    return len(queries)


def test_compute_stats_query_count_does_not_grow_with_the_graph():
    # Small: 2 nodes, 1 edge.
    a, b = node(), node()
    edge(a, b)
    compute_stats()  # the first on a connection also asks whether the ledger is there
    small = _queries_for_stats()
    assert small <= 3  # SQLite: 2; PostgreSQL: SET TRANSACTION and the 2

    # Larger: 60 nodes of every type and tier, 120 edges.
    kinds = NodeType.values
    more = Node.objects.bulk_create(
        Node(content="n", node_type=kinds[i % len(kinds)], momentum=(i % 10) / 10)
        for i in range(58)
    )
    nodes = [a, b, *more]
    Edge.objects.bulk_create(
        Edge(source=nodes[i], target=nodes[(i + step) % len(nodes)], weight=0.5)
        for i in range(len(nodes))
        for step in (1, 2)
        if (i, step) != (0, 1)  # a -> b exists already
    )
    assert Node.objects.count() == 60
    assert Edge.objects.count() == 120

    assert _queries_for_stats() == small


def test_compute_stats_without_entanglement_counts_edges_in_one_plain_query(settings):
    a, b = node(), node()
    edge(a, b)
    settings.GRAPHAPP = {"ENTANGLEMENT": False}

    with CaptureQueriesContext(connection) as queries:
        stats = compute_stats()

    assert stats["edges"] == 1
    assert stats["avg_entanglement"] is None
    assert stats["nodes"] == 2
    assert len(queries) == 2
    assert "UNION" not in queries[1]["sql"]
    assert "JOIN" not in queries[1]["sql"]


def test_compute_stats_without_edges_reads_only_the_nodes(settings):
    a, b = node(), node()
    edge(a, b)
    settings.GRAPHAPP = {"EDGES": False, "ENTANGLEMENT": False}

    with CaptureQueriesContext(connection) as queries:
        stats = compute_stats()

    assert stats["edges"] is None
    assert stats["avg_entanglement"] is None
    assert stats["tiers"]["WARM"] == 2
    assert len(queries) == 1


@pytest.mark.django_db(transaction=True)
def test_compute_stats_reads_one_snapshot_even_when_a_commit_lands_between_queries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fault injection at the one point that matters: another connection commits
    # a node and an edge right after the node counts were read. The edges must
    # be those of the same state (1), not the next one (2). (PostgreSQL lets the
    # commit land and reads around it; SQLite makes it wait for the snapshot.)
    a, b = node(), node()
    edge(a, b)
    counted = stats_module._node_counts
    writer = threading.Thread()

    def commit_elsewhere() -> None:
        try:
            c = node()
            edge(c, a)
        finally:
            connection.close()  # this thread's own connection

    tester = threading.current_thread()

    def counts_then_another_commit() -> dict[str, int]:
        nonlocal writer
        result = counted()
        if threading.current_thread() is not tester or writer.is_alive() or writer.ident:
            return result  # the publisher's thread, or a second call: no injection
        writer = threading.Thread(target=commit_elsewhere)
        writer.start()
        writer.join(1.0)  # done on PostgreSQL; waiting for our snapshot on SQLite
        return result

    monkeypatch.setattr(stats_module, "_node_counts", counts_then_another_commit)
    stats = compute_stats()
    writer.join()
    monkeypatch.undo()
    assert publisher.flush(10)  # the saves' publications, before the database goes

    assert stats["nodes"] == 2
    assert stats["edges"] == 1
    assert Edge.objects.count() == 2  # the other commit did land
