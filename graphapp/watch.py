"""Commits by other processes on SQLite, seen without reading the tables.

SQLite's ``PRAGMA data_version`` returns a different number on a connection
once any other connection has committed; reading it costs microseconds. The
publisher's thread keeps one such connection, reads the number just before
each computation, and between computations polls it: a change it did not
compute means another process (``manage.py graph_decay`` from cron, the shell)
changed the graph, and it publishes. This is how the embedded default (SQLite,
in-memory layer, one server process) still shows changes made elsewhere.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from django.db import connections

logger = logging.getLogger(__name__)


class DataVersionWatch:
    """A read-only connection to an SQLite file that notices others' commits."""

    def __init__(self, path: str) -> None:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        self._connection = sqlite3.connect(uri, uri=True, check_same_thread=True)
        self._seen = self._read()

    @classmethod
    def for_database(cls, alias: str) -> DataVersionWatch | None:
        """A watch on ``alias`` if it is an SQLite file, else None."""
        settings = connections[alias].settings_dict
        name = str(settings.get("NAME") or "")
        if settings.get("ENGINE") != "django.db.backends.sqlite3" or not Path(name).is_file():
            return None
        try:
            return cls(name)
        except sqlite3.Error as exc:
            logger.warning(
                "graphapp: cannot watch %s for other processes' commits: %s: %s",
                name,
                type(exc).__name__,
                exc,
            )
            return None

    def _read(self) -> int:
        row = self._connection.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def current(self) -> int | None:
        """The version now (what a computation about to start will include)."""
        try:
            return self._read()
        except sqlite3.Error as exc:
            logger.warning("graphapp: data_version unreadable: %s: %s", type(exc).__name__, exc)
            return None

    def accept(self, version: int) -> None:
        """A computation that started at ``version`` was published."""
        self._seen = version

    def changed(self) -> bool:
        """True when someone committed since the last accepted version."""
        current = self.current()
        return current is not None and current != self._seen

    def close(self) -> None:
        self._connection.close()
