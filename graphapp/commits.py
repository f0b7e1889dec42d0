"""One ``on_commit`` hook per transaction, carrying what its changes add to it.

A transaction of 10,000 saves runs one hook, and a rolled-back one runs none.
Django replaces a connection's ``run_on_commit`` list on commit, on rollback
and on a savepoint rollback, and drops a hook with the savepoint it was added
in when that rolls back; so while the list and the savepoints are the same,
the pending hook is ours to add to, and what a savepoint added travels in a
hook that goes if the savepoint goes.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

T = TypeVar("T")


class PerTransaction(Generic[T]):
    """A ``make()`` per transaction (per savepoint level), handed to ``then``
    once the transaction commits."""

    def __init__(self, make: Callable[[], T], then: Callable[[T], None]) -> None:
        self._make = make
        self._then = then
        # For each connection: the hooks list ours was appended to, the
        # savepoints open then, and what the hook hands on.
        self._pending: weakref.WeakKeyDictionary[
            BaseDatabaseWrapper, tuple[list[Any], tuple[str, ...], T]
        ] = weakref.WeakKeyDictionary()

    def pending(self, connection: BaseDatabaseWrapper) -> T | None:
        """What the current transaction's hook hands on; None outside one."""
        if not connection.in_atomic_block:
            return None
        hooks, savepoints = connection.run_on_commit, tuple(connection.savepoint_ids)
        pending = self._pending.get(connection)
        if pending is not None and pending[0] is hooks and pending[1] == savepoints:
            return pending[2]
        value = self._make()
        # robust: nothing here may fail a save that has committed.
        transaction.on_commit(
            functools.partial(self._then, value), using=connection.alias, robust=True
        )
        self._pending[connection] = (hooks, savepoints, value)
        return value
