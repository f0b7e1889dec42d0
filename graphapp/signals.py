"""Receivers that publish after every committed change of a Node or an Edge.

One ``on_commit`` hook per transaction (per savepoint level, graphapp.commits), not per
save: a transaction of 10,000 saves publishes its final state once, and a
rolled-back one publishes nothing. The hook also carries what happened to each
node (created, moved to another tier, deleted) for the ``change`` events,
listed one by one up to ``CHANGE_LIMIT`` and counted past it.

Bulk operations (``QuerySet.update()``, ``bulk_create()``, raw deletes) send no
signals; code that uses them calls :func:`publish_on_commit`, with counts.
"""

from __future__ import annotations

from typing import Any, cast

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.signals import post_delete, post_save

from graphapp.changes import KINDS, ChangeBatch, ChangeKind, change
from graphapp.commits import PerTransaction
from graphapp.conf import get_config
from graphapp.models import Edge, Node, tier_of
from graphapp.publish import request_publish


def _new_batch() -> ChangeBatch:
    return ChangeBatch(get_config()["CHANGE_LIMIT"])


_hooks = PerTransaction(_new_batch, request_publish)


def publish_on_commit(using: str | None = None, **counts: int) -> None:
    """Publish once the current transaction on ``using`` commits (at once outside one).

    ``counts`` tell the ``change`` events what a bulk operation did, by kind
    (``created``, ``deleted``, ``updated``, ``tier``): e.g. ``created=1000``.
    """
    connection = connections[using or DEFAULT_DB_ALIAS]
    batch = _hooks.pending(connection)
    now = batch is None
    if batch is None:
        batch = _new_batch()
    for kind, count in counts.items():
        batch.add_count(_kind(kind), count)
    if now:
        request_publish(batch)


def _kind(name: str) -> ChangeKind:
    if name not in KINDS:
        raise ValueError(f"unknown kind of change {name!r}; known: {', '.join(KINDS)}")
    return cast(ChangeKind, name)


def _record(connection: BaseDatabaseWrapper, item: dict[str, Any] | None) -> None:
    batch = _hooks.pending(connection)
    if batch is None:
        batch = _new_batch()
        if item is not None:
            batch.add(item)
        request_publish(batch)
    elif item is not None:
        batch.add(item)


def _node_saved(
    sender: type[Node],
    instance: Node,
    created: bool,
    using: str,
    update_fields: frozenset[str] | None = None,
    **kwargs: Any,
) -> None:
    item: dict[str, Any] | None = None
    if update_fields is not None and "momentum" not in update_fields:
        # The row's momentum stayed as it was, whatever the instance holds.
        _record(connections[using], item)
        return
    old, new = instance._saved_momentum, instance.momentum
    instance._saved_momentum = new
    if created:
        item = change("created", instance.pk, instance.node_type, tier_of(new).value)
    elif old is not None and tier_of(old) != tier_of(new):
        item = change(
            "tier", instance.pk, instance.node_type, tier_of(new).value, tier_of(old).value
        )
    _record(connections[using], item)


def _node_deleted(sender: type[Node], instance: Node, using: str, **kwargs: Any) -> None:
    # The tier as the instance knows it: the row is gone, and asking would cost a query.
    item = change("deleted", instance.pk, instance.node_type, instance.tier.value)
    _record(connections[using], item)


def _edge_changed(sender: type[Edge], using: str, **kwargs: Any) -> None:
    _record(connections[using], None)


def connect() -> None:
    """Connect the receivers (called by the app's ``ready()``)."""
    post_save.connect(_node_saved, sender=Node, dispatch_uid="graphapp.save.Node")
    post_delete.connect(_node_deleted, sender=Node, dispatch_uid="graphapp.delete.Node")
    post_save.connect(_edge_changed, sender=Edge, dispatch_uid="graphapp.save.Edge")
    post_delete.connect(_edge_changed, sender=Edge, dispatch_uid="graphapp.delete.Edge")
