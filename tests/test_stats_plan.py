"""The statistics' query plans on PostgreSQL at 100k nodes and 500k edges.

Two statements whatever the size: no correlated subplan, no nested loop over
nodes. The edge aggregate reads only indexes, each in its own order, so it
neither sorts nor hashes the edges. (The node aggregate reads the table once,
in parallel: for a whole-table count over a table this narrow that is what
PostgreSQL rightly finds cheapest.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

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


def target_index() -> str:
    """The name Django gave the foreign key's own index on graphapp_edge.target_id."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'graphapp_edge'"
            " AND indexdef LIKE %s",
            ["%(target_id)"],
        )
        ((name,),) = cursor.fetchall()
    return str(name)


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += plan_nodes(child)
    return found


def test_statistics_plans_at_100k_nodes_scan_each_table_once() -> None:
    with connection.cursor() as cursor:
        cursor.execute(SEED)
        # What autovacuum does on a live table: statistics, and the visibility
        # map that lets an index-only scan skip the heap.
        cursor.execute("VACUUM ANALYZE graphapp_node")
        cursor.execute("VACUUM ANALYZE graphapp_edge")
    with CaptureQueriesContext(connection) as queries:
        stats = compute_stats()
    assert stats["nodes"] == 100_000
    assert stats["edges"] > 400_000
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
        kinds = [node["Node Type"] for node in nodes]
        assert "Nested Loop" not in kinds, query["sql"]
        assert not any(node.get("Subplan Name") for node in nodes), query["sql"]
        scans = [node["Relation Name"] for node in nodes if "Relation Name" in node]
        assert len(scans) <= 2, (query["sql"], kinds)
        plans.append(nodes)

    node_scans = [node for node in plans[0] if "Relation Name" in node]
    assert [node["Relation Name"] for node in node_scans] == ["graphapp_node"]
    edge_scans = {
        node.get("Index Name"): node["Node Type"] for node in plans[1] if "Relation Name" in node
    }
    assert edge_scans == {
        "graphapp_edge_source_weight": "Index Only Scan",
        target_index(): "Index Only Scan",
    }
    edge_plan_kinds = {node["Node Type"] for node in plans[1]}
    assert "Sort" not in edge_plan_kinds, edge_plan_kinds
    # Grouped as the index delivers the rows, not in a hash of every edge end.
    strategies = {node.get("Strategy") for node in plans[1] if node["Node Type"] == "Aggregate"}
    assert "Sorted" in strategies, strategies
