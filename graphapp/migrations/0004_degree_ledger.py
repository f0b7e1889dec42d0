"""The per-node degree ledger that graphapp.ledger reads (PostgreSQL and SQLite).

Tables Django does not manage (no model: a fixture or ``dumpdata`` must never
carry them, since loading the edges fills them again), the triggers on the edge
table that keep them, and the ledger of the edges already there. Nothing happens
on other databases, which group the edges at every snapshot.

The statements are written out here rather than taken from graphapp.ledger: a
migration must stay what it was when it ran.
"""

from typing import Any

from django.db import migrations

BACKFILL = """
INSERT INTO graphapp_degree (node_id, out_edges, in_edges, out_weight)
SELECT node_id, SUM(out_edges), SUM(in_edges), SUM(out_weight) FROM (
    SELECT source_id AS node_id, 1 AS out_edges, 0 AS in_edges, weight AS out_weight
    FROM graphapp_edge
    UNION ALL
    SELECT target_id, 0, 1, 0.0 FROM graphapp_edge
) AS ends
GROUP BY node_id
"""

# PostgreSQL: writers append to graphapp_degree_delta only, and the publisher
# folds it into graphapp_degree: two transactions adding edges to one hub node
# share no row, so they never wait for each other nor deadlock.
POSTGRESQL = [
    """
    CREATE TABLE graphapp_degree (
        node_id bigint PRIMARY KEY,
        out_edges bigint NOT NULL,
        in_edges bigint NOT NULL,
        out_weight double precision NOT NULL
    )
    """,
    """
    CREATE TABLE graphapp_degree_delta (
        node_id bigint NOT NULL,
        out_edges integer NOT NULL,
        in_edges integer NOT NULL,
        out_weight double precision NOT NULL
    )
    """,
    # Row-level: a single edge's save (the admin, the API) pays 15-33 us where a
    # statement-level trigger's transition tables cost 65 (bench/NOTES.md).
    """
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
    $$
    """,
    """
    CREATE FUNCTION graphapp_degree_empty() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        TRUNCATE graphapp_degree, graphapp_degree_delta;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER graphapp_degree_insert_delete AFTER INSERT OR DELETE ON graphapp_edge
        FOR EACH ROW EXECUTE FUNCTION graphapp_degree_append()
    """,
    # Only when an end or the weight changes (a save rewrites every column).
    """
    CREATE TRIGGER graphapp_degree_update AFTER UPDATE ON graphapp_edge
        FOR EACH ROW
        WHEN ((OLD.source_id, OLD.target_id, OLD.weight)
              IS DISTINCT FROM (NEW.source_id, NEW.target_id, NEW.weight))
        EXECUTE FUNCTION graphapp_degree_append()
    """,
    """
    CREATE TRIGGER graphapp_degree_truncate AFTER TRUNCATE ON graphapp_edge
        FOR EACH STATEMENT EXECUTE FUNCTION graphapp_degree_empty()
    """,
    "LOCK TABLE graphapp_edge IN SHARE MODE",
    BACKFILL,
]

POSTGRESQL_BACKWARD = [
    "DROP TRIGGER graphapp_degree_truncate ON graphapp_edge",
    "DROP TRIGGER graphapp_degree_update ON graphapp_edge",
    "DROP TRIGGER graphapp_degree_insert_delete ON graphapp_edge",
    "DROP FUNCTION graphapp_degree_empty()",
    "DROP FUNCTION graphapp_degree_append()",
    "DROP TABLE graphapp_degree_delta",
    "DROP TABLE graphapp_degree",
]

# SQLite: one writer at a time holds the whole database, so the triggers update
# each node's row in place; a node left without edges keeps no row (and no float
# residue of its removed weights). A DELETE of every edge fires them row by row
# (SQLite skips its truncate shortcut on a table with triggers).
_ADD_END = """
    INSERT INTO graphapp_degree (node_id, out_edges, in_edges, out_weight)
    VALUES (NEW.source_id, 1, 0, NEW.weight)
    ON CONFLICT (node_id) DO UPDATE SET
        out_edges = out_edges + 1, out_weight = out_weight + excluded.out_weight;
    INSERT INTO graphapp_degree (node_id, out_edges, in_edges, out_weight)
    VALUES (NEW.target_id, 0, 1, 0.0)
    ON CONFLICT (node_id) DO UPDATE SET in_edges = in_edges + 1;
"""
_REMOVE_END = """
    UPDATE graphapp_degree SET
        out_edges = out_edges - 1,
        out_weight = CASE WHEN out_edges = 1 THEN 0.0 ELSE out_weight - OLD.weight END
    WHERE node_id = OLD.source_id;
    UPDATE graphapp_degree SET in_edges = in_edges - 1 WHERE node_id = OLD.target_id;
    DELETE FROM graphapp_degree
    WHERE node_id IN (OLD.source_id, OLD.target_id) AND out_edges = 0 AND in_edges = 0;
"""
SQLITE = [
    """
    CREATE TABLE graphapp_degree (
        node_id integer PRIMARY KEY,
        out_edges integer NOT NULL,
        in_edges integer NOT NULL,
        out_weight real NOT NULL
    )
    """,
    f"CREATE TRIGGER graphapp_degree_insert AFTER INSERT ON graphapp_edge BEGIN {_ADD_END} END",
    f"CREATE TRIGGER graphapp_degree_delete AFTER DELETE ON graphapp_edge BEGIN {_REMOVE_END} END",
    f"""
    CREATE TRIGGER graphapp_degree_update AFTER UPDATE OF source_id, target_id, weight
    ON graphapp_edge
    WHEN OLD.source_id IS NOT NEW.source_id OR OLD.target_id IS NOT NEW.target_id
         OR OLD.weight IS NOT NEW.weight
    BEGIN {_REMOVE_END} {_ADD_END} END
    """,
    BACKFILL,
]

SQLITE_BACKWARD = [
    "DROP TRIGGER graphapp_degree_update",
    "DROP TRIGGER graphapp_degree_delete",
    "DROP TRIGGER graphapp_degree_insert",
    "DROP TABLE graphapp_degree",
]


def _run(statements: dict[str, list[str]]) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        for statement in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement, None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("graphapp", "0003_relation_pattern_whole_string"),
    ]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRESQL, "sqlite": SQLITE}),
            _run({"postgresql": POSTGRESQL_BACKWARD, "sqlite": SQLITE_BACKWARD}),
            elidable=False,
        ),
    ]
