"""A SQLite database file put in the states a server meets in production:
locked by another connection's write transaction, or read-only."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holds an exclusive write transaction on ``path``: in
    SQLite's default (rollback journal) mode nobody else reads or writes until
    it ends, and a connection that waits past its busy time-out gets
    "database is locked"."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield holder
        holder.execute("ROLLBACK")
    finally:
        holder.close()


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` cannot be written: its mode, and for root (whom the mode does not
    stop) the immutable attribute. New connections open it read-only and get
    "attempt to write a readonly database"; open ones a disk I/O error."""
    mode = path.stat().st_mode
    immutable = os.geteuid() == 0
    path.chmod(0o444)
    try:
        if immutable:
            subprocess.run(["chattr", "+i", str(path)], check=True)
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(mode)
