"""Which of graphapp's tables that no model manages the database has.

The degree ledger and the graph's version (migrations 0004 and 0005) are tables
Django does not manage: databases made without migrations (pytest-django's
``--nomigrations``, ``migrate --run-syncdb``) have neither, and other vendors
never get them. Asked once per connection (a thread's wrapper, until it
connects again), and again after a migration. A table once seen stays known
until the next migration: a table that vanishes otherwise (renamed, dropped by
hand) is a broken database, whose reads must fail, not a database without it.
"""

from __future__ import annotations

import weakref

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

#: The vendors whose migrations create the tables.
VENDORS = frozenset({"postgresql", "sqlite"})

_tables: weakref.WeakKeyDictionary[BaseDatabaseWrapper, frozenset[str]] = (
    weakref.WeakKeyDictionary()
)
_seen: set[tuple[str, str]] = set()  # (alias, table) present since the last migration
_generation = 0  # bumped when every connection must ask again


def forget(**kwargs: object) -> None:
    """Ask again: a ``connection_created`` receiver (with ``connection``), and a
    ``post_migrate`` one (every connection: a migration may have added or
    dropped a table)."""
    global _generation
    connection = kwargs.get("connection")
    if isinstance(connection, BaseDatabaseWrapper):
        _tables.pop(connection, None)
    else:
        _generation += 1
        _tables.clear()
        _seen.clear()


def has_table(table: str, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the database behind ``using`` has ``table`` (PostgreSQL and SQLite only)."""
    connection = connections[using]
    if connection.vendor not in VENDORS:
        return False
    if (using, table) in _seen:
        return True
    tables = _tables.get(connection)
    if tables is None:
        asked = _generation
        with connection.cursor() as cursor:
            tables = frozenset(connection.introspection.table_names(cursor))
        if asked == _generation:  # no migration ran meanwhile: the answer holds
            _tables[connection] = tables
            _seen.update((using, name) for name in tables)
    return table in tables
