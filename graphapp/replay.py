"""The change log: what a stream that reconnects with ``Last-Event-ID`` missed.

The publisher logs each publication's node changes (the ``change`` event's
data, under the snapshot's version) before it sends them, so any version a
stream has seen has its changes logged, in every process alike. A stream that
reconnects saying it last saw version ``N`` gets the changes logged after
``N``, up to the snapshot it starts with, merged into one ``change`` event in
the live format (counts per kind past ``CHANGE_LIMIT``).

The log keeps ``CHANGE_LOG_RETENTION`` seconds and at most
``CHANGE_LOG_LIMIT`` publications. Pruning leaves a marker (a row without data)
at the newest version it forgot, so that a stream asking from before it is
told of the gap (``"gap": true``) rather than handed an incomplete list.
"""

from __future__ import annotations

import json
import time
from typing import Final

from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Max

from graphapp.changes import ChangeBatch
from graphapp.conf import get_config
from graphapp.models import LoggedChanges

PRUNE_EVERY: Final = 60.0  # seconds between prunings, per process
# What an id that graphapp never sent stands for: after every version, so the
# stream reports a gap (its client's state is unknown).
UNKNOWN: Final = 2**63 - 1
_MARKER: Final = ""


def parse_last_event_id(raw: str | None) -> int | None:
    """The version a reconnecting client last saw; None when it sent no id,
    :data:`UNKNOWN` when it sent one that graphapp would not have."""
    if raw is None or raw == "":
        return None
    if len(raw) > 19 or not raw.isascii() or not raw.isdigit():
        return UNKNOWN
    return int(raw)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def record(version: int, data: str) -> None:
    """Log one publication's changes (``data`` as the ``change`` event carries it)."""
    LoggedChanges.objects.create(version=version, at_ms=_now_ms(), data=data)


def gap(version: int) -> str:
    """A ``change`` event's data saying that changes up to ``version`` are not held."""
    empty = ChangeBatch(1).data(version)
    return json.dumps({**empty, "gap": True}, separators=(",", ":"))


def missed(after: int, upto: int) -> str:
    """The ``change`` event's data for what was logged after ``after`` up to
    ``upto``, or a gap; ``""`` when nothing changed in between."""
    if after > upto or LoggedChanges.objects.filter(data=_MARKER, version__gt=after).exists():
        return gap(upto)
    batch = ChangeBatch(get_config()["CHANGE_LIMIT"])
    rows = (
        LoggedChanges.objects.filter(version__gt=after, version__lte=upto)
        .order_by("version", "id")
        .values_list("data", flat=True)
    )
    for data in rows.iterator():
        batch.merge(ChangeBatch.decode(data, batch.limit))
    return batch.encode(upto) if batch else ""


_next_prune = 0.0


def prune(using: str = DEFAULT_DB_ALIAS) -> None:
    """Forget publications past the retention or the limit, leaving the marker
    (at most once a minute per process)."""
    global _next_prune
    if time.monotonic() < _next_prune:
        return
    _next_prune = time.monotonic() + PRUNE_EVERY
    config = get_config()
    rows = LoggedChanges.objects.using(using)
    logged = rows.exclude(data=_MARKER)
    cutoff = logged.filter(
        at_ms__lt=_now_ms() - round(config["CHANGE_LOG_RETENTION"] * 1000)
    ).aggregate(newest=Max("version"))["newest"]
    limit = config["CHANGE_LOG_LIMIT"]
    beyond = logged.order_by("-version", "-id").values_list("version", flat=True)[limit : limit + 1]
    forget = max([v for v in (cutoff, *beyond) if v is not None], default=None)
    if forget is None:
        return
    with transaction.atomic(using=using):
        rows.filter(version__lte=forget).delete()
        rows.create(version=forget, at_ms=_now_ms(), data=_MARKER)
