"""Edge weights finite and in [0, 1], momentum finite: in validation and in the database.

A weight like 1e308 overflowed the statistics' sums (PostgreSQL refused to
compute them at all), and NaN passed the field validators. Rows already out of
range are clamped to the bound before the CHECK constraint is added (NaN, which
only PostgreSQL keeps, becomes the default weight 1.0), and the degree ledger
is then recomputed from the edges.

SQLite adds a constraint by copying the edge table to a new one, which drops
every trigger on it: the ledger's (migration 0004) and the graph version's
(migration 0005) are created again afterwards, and the same again when this
migration is rolled back. The ledger's SQLite triggers now add each weight
clamped to [0, 1], as graphapp.ledger reads the rows, so a row written past the
constraint (``PRAGMA ignore_check_constraints``) can never make a node's sum
infinite, or NULL (inf - inf), which would make every later write to its edges
fail. PostgreSQL keeps its triggers through ALTER TABLE; they only append rows,
which graphapp.ledger clamps where it sums them.

The statements are written out here rather than taken from graphapp.ledger: a
migration must stay what it was when it ran.
"""

from typing import Any

import django.core.validators
from django.db import migrations, models

import graphapp.models

REBUILD = {
    "postgresql": [
        "LOCK TABLE graphapp_edge IN SHARE MODE",
        "DELETE FROM graphapp_degree_delta",
        "DELETE FROM graphapp_degree",
    ],
    "sqlite": ["DELETE FROM graphapp_degree"],
}

# As migration 0004's, with each weight clamped to [0, 1] (NaN, on PostgreSQL: 1).
BACKFILL = """
INSERT INTO graphapp_degree (node_id, out_edges, in_edges, out_weight)
SELECT node_id, SUM(out_edges), SUM(in_edges), SUM(out_weight) FROM (
    SELECT source_id AS node_id, 1 AS out_edges, 0 AS in_edges,
           CASE WHEN weight >= 1.0 THEN 1.0 WHEN weight > 0.0 THEN weight ELSE 0.0 END
           AS out_weight
    FROM graphapp_edge
    UNION ALL
    SELECT target_id, 0, 1, 0.0 FROM graphapp_edge
) AS ends
GROUP BY node_id
"""

LEDGER_TRIGGERS = ("graphapp_degree_insert", "graphapp_degree_delete", "graphapp_degree_update")


def _ledger_triggers(weight: str) -> list[str]:
    """SQLite's ledger triggers (migration 0004's), ``weight`` an expression of
    ``{row}`` (NEW or OLD) for the weight a row adds."""
    add_end = f"""
        INSERT INTO graphapp_degree (node_id, out_edges, in_edges, out_weight)
        VALUES (NEW.source_id, 1, 0, {weight.format(row="NEW")})
        ON CONFLICT (node_id) DO UPDATE SET
            out_edges = out_edges + 1, out_weight = out_weight + excluded.out_weight;
        INSERT INTO graphapp_degree (node_id, out_edges, in_edges, out_weight)
        VALUES (NEW.target_id, 0, 1, 0.0)
        ON CONFLICT (node_id) DO UPDATE SET in_edges = in_edges + 1;
    """
    remove_end = f"""
        UPDATE graphapp_degree SET
            out_edges = out_edges - 1,
            out_weight = CASE WHEN out_edges = 1 THEN 0.0
                              ELSE out_weight - {weight.format(row="OLD")} END
        WHERE node_id = OLD.source_id;
        UPDATE graphapp_degree SET in_edges = in_edges - 1 WHERE node_id = OLD.target_id;
        DELETE FROM graphapp_degree
        WHERE node_id IN (OLD.source_id, OLD.target_id) AND out_edges = 0 AND in_edges = 0;
    """
    return [
        f"CREATE TRIGGER graphapp_degree_insert AFTER INSERT ON graphapp_edge BEGIN {add_end} END",
        f"CREATE TRIGGER graphapp_degree_delete AFTER DELETE ON graphapp_edge BEGIN {remove_end} END",
        f"""
        CREATE TRIGGER graphapp_degree_update AFTER UPDATE OF source_id, target_id, weight
        ON graphapp_edge
        WHEN OLD.source_id IS NOT NEW.source_id OR OLD.target_id IS NOT NEW.target_id
             OR OLD.weight IS NOT NEW.weight
        BEGIN {remove_end} {add_end} END
        """,
    ]


# Migration 0005's triggers on the edge table.
VERSION_TRIGGERS = [
    f"""
    CREATE TRIGGER graphapp_version_edge_{op.lower()}
    AFTER {op} ON graphapp_edge
    BEGIN UPDATE graphapp_version SET value = value + 1 WHERE id = 1; END
    """
    for op in ("INSERT", "UPDATE", "DELETE")
]

CLAMPED = "MIN(1.0, MAX(0.0, {row}.weight))"
AS_IN_0004 = "{row}.weight"


def drop_ledger_triggers(apps: Any, schema_editor: Any) -> None:
    """SQLite: before the clamping, whose updates they would follow with inf - inf
    (NULL, refused by the ledger's column); the table copy drops them anyway."""
    if schema_editor.connection.vendor == "sqlite":
        for name in LEDGER_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}", None)


def clamp_weights(apps: Any, schema_editor: Any) -> None:
    edges = apps.get_model("graphapp", "Edge").objects.using(schema_editor.connection.alias)
    if schema_editor.connection.vendor == "postgresql":
        # NaN = NaN on PostgreSQL; SQLite stores no NaN, and other databases none.
        edges.filter(weight=float("nan")).update(weight=1.0)
    edges.filter(weight__gt=1.0).update(weight=1.0)
    edges.filter(weight__lt=0.0).update(weight=0.0)


def _restore(ledger_weight: str) -> Any:
    """The SQLite triggers of the edge table made again, then the ledger recomputed."""

    def run(apps: Any, schema_editor: Any) -> None:
        vendor = schema_editor.connection.vendor
        statements = []
        if vendor == "sqlite":
            statements += _ledger_triggers(ledger_weight) + VERSION_TRIGGERS
        if vendor in REBUILD:
            statements += [*REBUILD[vendor], BACKFILL]
        for statement in statements:
            schema_editor.execute(statement, None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("graphapp", "0005_graph_version"),
    ]

    operations = [
        migrations.AlterField(
            model_name="edge",
            name="weight",
            field=models.FloatField(
                default=1.0,
                validators=[
                    graphapp.models.validate_finite,
                    django.core.validators.MinValueValidator(0.0),
                    django.core.validators.MaxValueValidator(1.0),
                ],
            ),
        ),
        migrations.AlterField(
            model_name="node",
            name="momentum",
            field=models.FloatField(
                default=1.0,
                validators=[
                    graphapp.models.validate_finite,
                    django.core.validators.MinValueValidator(0.0),
                    django.core.validators.MaxValueValidator(1.0),
                ],
            ),
        ),
        # Rolled back last: after the constraint's removal copied the table again.
        migrations.RunPython(drop_ledger_triggers, _restore(AS_IN_0004), elidable=False),
        migrations.RunPython(clamp_weights, migrations.RunPython.noop, elidable=False),
        migrations.AddConstraint(
            model_name="edge",
            constraint=models.CheckConstraint(
                condition=models.Q(("weight__gte", 0.0), ("weight__lte", 1.0)),
                name="graphapp_edge_weight_0_1",
            ),
        ),
        migrations.RunPython(_restore(CLAMPED), migrations.RunPython.noop, elidable=False),
    ]
