"""PostgreSQL only: the per-node degree ledger that graphapp.ledger reads and folds.

Two tables Django does not manage (no model: a fixture or ``dumpdata`` must never
carry them, since loading the edges fills them again), the triggers on the edge
table that append to the second, and the ledger of the edges already there.
Nothing happens on other databases.
"""

from typing import Any

from django.db import migrations

FORWARD = """
CREATE TABLE graphapp_degree (
    node_id bigint PRIMARY KEY,
    out_edges bigint NOT NULL,
    in_edges bigint NOT NULL,
    out_weight double precision NOT NULL
);
CREATE TABLE graphapp_degree_delta (
    node_id bigint NOT NULL,
    out_edges integer NOT NULL,
    in_edges integer NOT NULL,
    out_weight double precision NOT NULL
);

-- Row-level: a single edge's save (the admin, the API) pays about 15 us where
-- a statement-level trigger's transition tables cost 65 (bench/NOTES.md).
CREATE FUNCTION graphapp_degree_append() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO graphapp_degree_delta (node_id, out_edges, in_edges, out_weight)
        VALUES (NEW.source_id, 1, 0, NEW.weight), (NEW.target_id, 0, 1, 0.0);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO graphapp_degree_delta (node_id, out_edges, in_edges, out_weight)
        VALUES (OLD.source_id, -1, 0, -OLD.weight), (OLD.target_id, 0, -1, 0.0);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION graphapp_degree_empty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE graphapp_degree, graphapp_degree_delta;
    RETURN NULL;
END
$$;

CREATE TRIGGER graphapp_degree_insert_delete AFTER INSERT OR DELETE ON graphapp_edge
    FOR EACH ROW EXECUTE FUNCTION graphapp_degree_append();
-- Only when an end or the weight changes (a save rewrites every column).
CREATE TRIGGER graphapp_degree_update AFTER UPDATE ON graphapp_edge
    FOR EACH ROW
    WHEN ((OLD.source_id, OLD.target_id, OLD.weight)
          IS DISTINCT FROM (NEW.source_id, NEW.target_id, NEW.weight))
    EXECUTE FUNCTION graphapp_degree_append();
CREATE TRIGGER graphapp_degree_truncate AFTER TRUNCATE ON graphapp_edge
    FOR EACH STATEMENT EXECUTE FUNCTION graphapp_degree_empty();

LOCK TABLE graphapp_edge IN SHARE MODE;
INSERT INTO graphapp_degree (node_id, out_edges, in_edges, out_weight)
SELECT node_id, SUM(out_edges), SUM(in_edges), SUM(out_weight) FROM (
    SELECT source_id AS node_id, 1 AS out_edges, 0 AS in_edges, weight AS out_weight
    FROM graphapp_edge
    UNION ALL
    SELECT target_id, 0, 1, 0.0 FROM graphapp_edge
) AS ends
GROUP BY node_id;
"""

BACKWARD = """
DROP TRIGGER graphapp_degree_truncate ON graphapp_edge;
DROP TRIGGER graphapp_degree_update ON graphapp_edge;
DROP TRIGGER graphapp_degree_insert_delete ON graphapp_edge;
DROP FUNCTION graphapp_degree_empty();
DROP FUNCTION graphapp_degree_append();
DROP TABLE graphapp_degree_delta;
DROP TABLE graphapp_degree;
"""


def _on_postgresql(sql: str) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("graphapp", "0003_relation_pattern_whole_string"),
    ]

    operations = [
        migrations.RunPython(_on_postgresql(FORWARD), _on_postgresql(BACKWARD), elidable=False),
    ]
