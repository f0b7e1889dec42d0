"""The graph's version, kept by the database (PostgreSQL and SQLite): graphapp.versions.

Every committed write to the node or edge table raises it, whoever makes it (the
ORM, bulk operations, cascades, raw SQL, another program), and a snapshot reads
it in the same transaction as its statistics: the same state of the database
has the same version in every process, and a later state a larger one, whatever
the clocks say.

The statements are written out here rather than taken from graphapp.versions: a
migration must stay what it was when it ran.
"""

from typing import Any

from django.db import migrations

TABLES = ("graphapp_node", "graphapp_edge")

# PostgreSQL: a writing transaction appends one row to graphapp_version_delta
# (its first write statement does; a transaction-local setting remembers it),
# and the publisher folds the rows into graphapp_version.value. The version is
# value + the rows pending: in any snapshot, exactly the writing transactions
# that snapshot sees. Writers share no row, so they never wait for each other,
# and no isolation level makes them fail to serialize.
POSTGRESQL = [
    """
    CREATE TABLE graphapp_version (
        id smallint PRIMARY KEY CHECK (id = 1),
        value bigint NOT NULL
    )
    """,
    "INSERT INTO graphapp_version (id, value) VALUES (1, 1)",
    "CREATE TABLE graphapp_version_delta (id bigserial PRIMARY KEY)",
    """
    CREATE FUNCTION graphapp_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF current_setting('graphapp.version_bumped', true) IS DISTINCT FROM 'on' THEN
            -- Local to the transaction (and undone with a rolled-back savepoint,
            -- as the row below is).
            PERFORM set_config('graphapp.version_bumped', 'on', true);
            INSERT INTO graphapp_version_delta DEFAULT VALUES;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    *(
        f"""
        CREATE TRIGGER graphapp_version_{table.removeprefix("graphapp_")}
        AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION graphapp_version_bump()
        """
        for table in TABLES
    ),
    # Also in sessions with session_replication_role = replica (logical
    # replication subscribers): their writes change the graph too.
    *(
        f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER graphapp_version_{table.removeprefix('graphapp_')}"
        for table in TABLES
    ),
]

POSTGRESQL_BACKWARD = [
    *(
        f"DROP TRIGGER graphapp_version_{table.removeprefix('graphapp_')} ON {table}"
        for table in TABLES
    ),
    "DROP FUNCTION graphapp_version_bump()",
    "DROP TABLE graphapp_version_delta",
    "DROP TABLE graphapp_version",
]

# SQLite: one writer at a time holds the whole database, so the triggers raise
# the one row in place (SQLite has row triggers only).
SQLITE = [
    """
    CREATE TABLE graphapp_version (
        id integer PRIMARY KEY CHECK (id = 1),
        value integer NOT NULL
    )
    """,
    "INSERT INTO graphapp_version (id, value) VALUES (1, 1)",
    *(
        f"""
        CREATE TRIGGER graphapp_version_{table.removeprefix("graphapp_")}_{op.lower()}
        AFTER {op} ON {table}
        BEGIN UPDATE graphapp_version SET value = value + 1 WHERE id = 1; END
        """
        for table in TABLES
        for op in ("INSERT", "UPDATE", "DELETE")
    ),
]

SQLITE_BACKWARD = [
    *(
        f"DROP TRIGGER graphapp_version_{table.removeprefix('graphapp_')}_{op.lower()}"
        for table in TABLES
        for op in ("INSERT", "UPDATE", "DELETE")
    ),
    "DROP TABLE graphapp_version",
]


def _run(statements: dict[str, list[str]]) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        for statement in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement, None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("graphapp", "0004_degree_ledger"),
    ]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRESQL, "sqlite": SQLITE}),
            _run({"postgresql": POSTGRESQL_BACKWARD, "sqlite": SQLITE_BACKWARD}),
            elidable=False,
        ),
    ]
