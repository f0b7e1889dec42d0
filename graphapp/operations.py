"""Bulk operations on the graph: activation, decay, pruning.

Each runs a fixed number of SQL statements whatever the number of rows, and
none sends ``post_save``/``post_delete`` (a receiver on every row is what made
pruning slow), so each asks for one publication when its transaction commits.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db import transaction
from django.db.models import Expression, F, FloatField, Func, Q, QuerySet, Value
from django.db.models.functions import Greatest, Least
from django.utils import timezone

from graphapp.models import (
    ACTIVATION_BOOST,
    DECAY_PER_HOUR,
    MAX_DECAY_HOURS,
    MOMENTUM_FLOOR,
    Edge,
    Node,
)
from graphapp.signals import publish_on_commit

# Ids per DELETE: well under SQLite's 32,766 bound variables.
PRUNE_CHUNK = 5000


class HoursBetween(Func):
    """Hours from datetime ``start`` to datetime ``end`` (negative if ``end`` is earlier)."""

    output_field = FloatField()

    def __init__(self, start: Any, end: Any) -> None:
        # Compiled in this order: end, then start.
        super().__init__(end, start)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django keeps datetimes on SQLite as ISO text, which julianday() reads.
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 24.0)",
            arg_joiner=") - julianday(",
            **extra,
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="(EXTRACT(EPOCH FROM (%(expressions)s)) / 3600.0)",
            arg_joiner=" - ",
            **extra,
        )


def _decayed(hours: Expression | Value) -> Expression:
    """Momentum after ``hours`` of decay: down 0.05 an hour, never below the floor
    (and never raised to it when already below)."""
    lowered = Greatest(
        Value(MOMENTUM_FLOOR),
        F("momentum") - Value(DECAY_PER_HOUR) * hours,
        output_field=FloatField(),
    )
    return Least(F("momentum"), lowered, output_field=FloatField())


def _elapsed_hours(now: datetime.datetime) -> Expression:
    return Greatest(
        Value(0.0), HoursBetween(F("decayed_at"), Value(now)), output_field=FloatField()
    )


def decay(
    nodes: QuerySet[Node] | None = None,
    *,
    hours: float | None = None,
    now: datetime.datetime | None = None,
) -> int:
    """Apply decay to ``nodes`` (default: all); returns how many rows were updated.

    Without ``hours``, each node decays for the time since its ``decayed_at`` and
    its clock moves to ``now``. With ``hours``, each node decays by exactly that
    many hours and its clock moves forward by as much, so those hours are not
    counted again later. Either way no hour is ever counted twice. ``hours``
    beyond ``MAX_DECAY_HOURS`` (a year), negative or not finite raise ValueError.
    """
    nodes = Node.objects.all() if nodes is None else nodes
    if hours is not None:
        if not 0 <= hours <= MAX_DECAY_HOURS:  # NaN fails both comparisons
            raise ValueError(
                f"hours must be a finite number from 0 to {MAX_DECAY_HOURS}, not {hours!r}"
            )
        changes: dict[str, Any] = {
            "momentum": _decayed(Value(float(hours))),
            "decayed_at": F("decayed_at") + Value(datetime.timedelta(hours=hours)),
        }
    else:
        now = now or timezone.now()
        changes = {
            "momentum": _decayed(_elapsed_hours(now)),
            "decayed_at": Greatest(F("decayed_at"), Value(now)),
        }
    with transaction.atomic(using=nodes.db):
        count = nodes.order_by().update(**changes)
        publish_on_commit(nodes.db, updated=count)
    return count


def activate(nodes: QuerySet[Node], *, now: datetime.datetime | None = None) -> int:
    """Access ``nodes``: settle their pending decay, add 0.3 (at most 1), touch them."""
    now = now or timezone.now()
    boosted = Least(
        Value(1.0),
        _decayed(_elapsed_hours(now)) + Value(ACTIVATION_BOOST),
        output_field=FloatField(),
    )
    with transaction.atomic(using=nodes.db):
        count = nodes.order_by().update(
            momentum=boosted,
            last_accessed=Value(now),
            decayed_at=Greatest(F("decayed_at"), Value(now)),
        )
        publish_on_commit(nodes.db, updated=count)
    return count


def prune(nodes: QuerySet[Node]) -> int:
    """Delete ``nodes`` and their edges in two statements; returns the nodes deleted.

    Bypasses the per-row collector on purpose: with delete receivers connected,
    ``QuerySet.delete()`` would load every row and send a signal per row.
    """
    using = nodes.db
    count = 0
    with transaction.atomic(using=using):
        # Fix the set once and lock it: a node activated (or decayed, or given an
        # edge) by another transaction meanwhile must not lose only its edges, or
        # be deleted with an edge left pointing at it.
        ids = list(
            Node.objects.using(using)
            .filter(pk__in=nodes.order_by().values("pk"))
            .select_for_update()
            .values_list("pk", flat=True)
        )
        for start in range(0, len(ids), PRUNE_CHUNK):
            chunk = ids[start : start + PRUNE_CHUNK]
            edges = Edge.objects.using(using).filter(Q(source__in=chunk) | Q(target__in=chunk))
            edges._raw_delete(using)
            # None when Django proves the selection empty and runs no query.
            count += Node.objects.using(using).filter(pk__in=chunk)._raw_delete(using) or 0
        publish_on_commit(using, deleted=count)
    return count


def prune_below(threshold: float) -> int:
    """Delete every node whose momentum is below ``threshold``, and its edges."""
    return prune(Node.objects.filter(momentum__lt=threshold))
