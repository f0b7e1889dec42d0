"""The statistics' query plans on PostgreSQL at 100k nodes and 500k edges.

Two statements whatever the size, no correlated subplan. The node aggregate
reads the node table once (in parallel: for a whole-table count over a table
this narrow that is what PostgreSQL rightly finds cheapest). The entanglement
reads the degree ledger that the database keeps (graphapp.ledger): one scan of
its per-node rows, never the edges.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from graphapp import ledger
from graphapp.models import Edge, Node
from graphapp.stats import compute_stats

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# Test data only: replication role skips the per-row foreign-key triggers
# (the generated ids are valid by construction), 12 s -> about 3 s.
SEED = """
SET session_replication_role = replica;
INSERT INTO graphapp_node (content, node_type, momentum, created_at, last_accessed,
                           decayed_at, metadata)
SELECT 'node ' || i, (ARRAY['FACT','CONCEPT','CODE','DREAM','ENTITY'])[1 + i % 5],
       (i % 1000) / 1000.0, now(), now(), now(), '{}'::jsonb
FROM generate_series(1, 100000) AS i;
INSERT INTO graphapp_edge (source_id, target_id, relation, weight, created_at)
SELECT base.first + i, base.first + (i * 7 + k * 13) % 100000, 'relates_to', 0.5, now()
FROM (SELECT min(id) AS first FROM graphapp_node) AS base,
     generate_series(0, 99999) AS i, generate_series(1, 5) AS k
WHERE (i * 7 + k * 13) % 100000 <> i
ON CONFLICT DO NOTHING;
SET session_replication_role = DEFAULT;
"""


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += plan_nodes(child)
    return found


def test_statistics_plans_at_100k_nodes_scan_each_table_once() -> None:
    with connection.cursor() as cursor:
        cursor.execute(SEED)
    # The seed skipped the triggers, as a restore with --disable-triggers does.
    ledger.rebuild()
    with connection.cursor() as cursor:
        # What autovacuum does on a live table.
        for table in ("graphapp_node", "graphapp_edge", ledger.DEGREE):
            cursor.execute(f"VACUUM ANALYZE {table}")
    # Some changes not folded yet, as between two publications (raw SQL: no
    # receiver publishes, so the publisher does not fold them first).
    hub, *others = Node.objects.order_by("pk").values_list("pk", flat=True)[:4]
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM graphapp_edge WHERE source_id = %s", [hub])
        for other in others:
            cursor.execute(
                "INSERT INTO graphapp_edge (source_id, target_id, relation, weight, created_at)"
                " VALUES (%s, %s, 'relates_to', 0.25, now())",
                [hub, other],
            )
        cursor.execute(f"SELECT COUNT(*) FROM {ledger.DELTA}")
        assert cursor.fetchone()[0] > 0
    compute_stats()  # the first on a connection also asks whether the ledger is there
    with CaptureQueriesContext(connection) as queries:
        stats = compute_stats()
    assert stats["nodes"] == 100_000
    assert stats["edges"] == Edge.objects.count() > 400_000
    # Besides SET TRANSACTION (one snapshot for both, see stats._one_snapshot):
    selects = [q for q in queries.captured_queries if q["sql"].lstrip().startswith("SELECT")]
    assert len(selects) == 2
    plans = []
    for query in selects:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + query["sql"])
            (row,) = cursor.fetchall()
        document = row[0] if isinstance(row[0], list) else json.loads(row[0])
        nodes = plan_nodes(document[0]["Plan"])
        assert not any(node.get("Subplan Name") for node in nodes), query["sql"]
        plans.append(nodes)

    node_plan, entanglement_plan = plans
    assert "Nested Loop" not in [node["Node Type"] for node in node_plan]
    node_scans = [node["Relation Name"] for node in node_plan if "Relation Name" in node]
    assert node_scans == ["graphapp_node"]

    read = [node["Relation Name"] for node in entanglement_plan if "Relation Name" in node]
    assert "graphapp_edge" not in read, read
    whole = [
        node
        for node in entanglement_plan
        if node.get("Relation Name") == ledger.DEGREE and node["Node Type"] == "Seq Scan"
    ]
    assert len(whole) == 1, entanglement_plan
    # The pending rows are looked up by node, never scanned once per folded row.
    for join in (node for node in entanglement_plan if node["Node Type"] == "Nested Loop"):
        inner = plan_nodes(join["Plans"][1])
        assert not any(
            node.get("Relation Name") == ledger.DEGREE and node["Node Type"] == "Seq Scan"
            for node in inner
        ), entanglement_plan
