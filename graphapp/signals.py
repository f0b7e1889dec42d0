"""Receivers that publish after every committed change of a Node or an Edge.

One ``on_commit`` hook per transaction, not per save: a transaction of 10,000
saves publishes its final state once, and a rolled-back one publishes nothing.
Bulk operations (``QuerySet.update()``, ``bulk_create()``, raw deletes) send no
signals; code that uses them calls :func:`graphapp.publish.request_publish`.
"""

from __future__ import annotations

import weakref
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.signals import post_delete, post_save

from graphapp.models import Edge, Node
from graphapp.publish import request_publish

# For each connection, the ``run_on_commit`` list our hook was appended to. Django
# replaces that list on commit, on rollback and on a savepoint rollback, so while
# it is still the same object our hook is still pending and need not be added
# again. (After a savepoint rollback we add it again, which at worst costs one
# extra, identical event.)
_pending: weakref.WeakKeyDictionary[BaseDatabaseWrapper, list[Any]] = weakref.WeakKeyDictionary()


def publish_on_commit(using: str | None = None) -> None:
    """Publish once the current transaction on ``using`` commits (at once outside one)."""
    connection = connections[using or DEFAULT_DB_ALIAS]
    if not connection.in_atomic_block:
        request_publish()
        return
    hooks = connection.run_on_commit
    if _pending.get(connection) is hooks:
        return
    # robust: nothing here may fail a save that has committed.
    transaction.on_commit(request_publish, using=connection.alias, robust=True)
    _pending[connection] = hooks


def _changed(sender: type[Node | Edge], using: str, **kwargs: Any) -> None:
    publish_on_commit(using)


def connect() -> None:
    """Connect the receivers (called by the app's ``ready()``)."""
    for model in (Node, Edge):
        post_save.connect(_changed, sender=model, dispatch_uid=f"graphapp.save.{model.__name__}")
        post_delete.connect(
            _changed, sender=model, dispatch_uid=f"graphapp.delete.{model.__name__}"
        )
