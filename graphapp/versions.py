"""The graph's version: a number the database raises at every committed write.

Triggers on the node and edge tables (migration 0005) raise it whoever writes:
the ORM, bulk operations, cascades, raw SQL, another program. A snapshot reads
it in the same transaction as its statistics (graphapp.snapshots), so

* the same state of the database has the same version in every process, and a
  later state a larger one: versions order snapshots with no clock at all;
* "has the graph changed since version v?" costs one read of one row, which
  every process with open streams asks about once a second (graphapp.hubs).

On PostgreSQL a writing transaction appends one row to ``graphapp_version_delta``
(writers share no row, so they never wait for each other), and :func:`fold`
moves those rows into ``graphapp_version``'s count; the version is the count
plus the rows pending, so folding never changes it. On SQLite, where one writer
holds the whole database anyway, the triggers raise the one row in place. Other
databases keep no version (:func:`read` returns None) and the processes compare
whole snapshots instead.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from graphapp import schema

VERSION = "graphapp_version"
DELTA = "graphapp_version_delta"

_READ_SQL = {
    "postgresql": f"SELECT value + (SELECT COUNT(*) FROM {DELTA}) FROM {VERSION} WHERE id = 1",
    "sqlite": f"SELECT value FROM {VERSION} WHERE id = 1",
}

# Moves the pending rows into the count in one statement: a snapshot sees both
# or neither, so the sum it reads stays the same. Two folds at once each add
# only the rows they deleted.
_FOLD_SQL = f"""
WITH moved AS (DELETE FROM {DELTA} RETURNING id)
UPDATE {VERSION} SET value = value + (SELECT COUNT(*) FROM moved)
WHERE id = 1 AND EXISTS (SELECT FROM moved)
"""


def in_use(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the database behind ``using`` keeps a version (migration 0005)."""
    return schema.has_table(VERSION, using)


def read(using: str = DEFAULT_DB_ALIAS) -> int | None:
    """The version of what this connection's current snapshot sees; None where
    the database keeps none."""
    if not in_use(using):
        return None
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(_READ_SQL[connection.vendor])
        row = cursor.fetchone()
    return int(row[0]) if row else None


def bump(using: str = DEFAULT_DB_ALIAS) -> None:
    """Raise the version as a write would (inside the caller's transaction):
    for changes to what the statistics read that no trigger saw (a ledger
    rebuilt after a load with triggers off)."""
    if not in_use(using):
        return
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"INSERT INTO {DELTA} DEFAULT VALUES")
        else:
            cursor.execute(f"UPDATE {VERSION} SET value = value + 1 WHERE id = 1")


def fold(using: str = DEFAULT_DB_ALIAS) -> None:
    """PostgreSQL: move the pending rows into the count (the version stays the
    same). Elsewhere nothing is pending."""
    connection = connections[using]
    if connection.vendor != "postgresql" or not in_use(using):
        return
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(_FOLD_SQL)
