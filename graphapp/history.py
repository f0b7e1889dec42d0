"""History: one point per published snapshot, kept for ``HISTORY_WINDOW``.

The publisher (and a hub that computed a snapshot itself) records each
snapshot's totals in the database, where every process and every restart sees
them. A new stream gets them right after its first ``stats`` event as
``event: history``; the JSON API serves the same points.

A history event stays small however many snapshots there were: the window is
cut into spans (the last 10 minutes, the last hour, the last day, then the
whole window), each span into equal buckets, and each bucket keeps its latest
point. So recent minutes keep more detail than older hours, and a chart drawn
over any of those ranges has about the same number of points.
:func:`choose` makes that choice; the database (:func:`load`) and a hub's
memory (:class:`Timeline`) both feed it the latest point of every bucket, so
a stream and the API show the same points.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TypedDict

from django.db import DEFAULT_DB_ALIAS, DatabaseError
from django.db.models import BigIntegerField, F, Value, Window
from django.db.models.functions import RowNumber

from graphapp.conf import get_config
from graphapp.models import HistoryPoint
from graphapp.types import Snapshot

logger = logging.getLogger(__name__)

# Seconds: the ranges a page offers, and so the spans history keeps detail for.
RANGES: Final = (600, 3_600, 86_400, 7 * 86_400)
PRUNE_EVERY: Final = 60.0  # seconds between prunings, per process


class PointData(TypedDict):
    """One point as ``event: history`` and the API carry it."""

    version: int
    at: str
    nodes: int
    edges: int | None
    tiers: dict[str, int]
    types: dict[str, int]


class Point(NamedTuple):
    version: int
    at_ms: int
    nodes: int
    edges: int | None
    tiers: dict[str, int]
    types: dict[str, int]

    @classmethod
    def of(cls, snapshot: Snapshot | dict[str, Any]) -> Point:
        at = datetime.datetime.fromisoformat(snapshot["at"])
        return cls(
            snapshot["version"],
            int(at.timestamp() * 1000),
            snapshot["nodes"],
            snapshot["edges"],
            snapshot["tiers"],
            snapshot["types"],
        )

    def data(self) -> PointData:
        at = datetime.datetime.fromtimestamp(self.at_ms / 1000, datetime.UTC)
        return {
            "version": self.version,
            "at": at.isoformat(timespec="milliseconds"),
            "nodes": self.nodes,
            "edges": self.edges,
            "tiers": self.tiers,
            "types": self.types,
        }


@dataclass(frozen=True)
class Span:
    length_ms: int
    bucket_ms: int


def spans(window: float, points: int) -> tuple[Span, ...]:
    """The spans of a window, finest first; each bucket a multiple of the finer
    one's, so that the spans' boundaries fall on both grids."""
    window_ms = max(1, round(window * 1000))
    shorter = [r * 1000 for r in RANGES if r * 1000 < window_ms][:3]
    lengths = [*shorter, window_ms]
    per = max(1, points // len(lengths) - 3)
    result: list[Span] = []
    bucket = 1
    for length in lengths:
        wanted = -(-length // per)
        bucket *= -(-wanted // bucket)
        result.append(Span(length, bucket))
    return tuple(result)


def regions(now_ms: int, grid: tuple[Span, ...]) -> list[tuple[int, int]]:
    """Each span's ``[start, end)`` in ms, finest first, ends on its own grid."""
    bounds: list[tuple[int, int]] = []
    end = 2**62  # the finest span takes whatever is newer, a clock ahead included
    for index, span in enumerate(grid):
        coarser = grid[index + 1].bucket_ms if index + 1 < len(grid) else span.bucket_ms
        start = (now_ms - span.length_ms) // coarser * coarser
        bounds.append((start, end))
        end = start
    return bounds


def choose(points: Iterable[Point], now_ms: int, grid: tuple[Span, ...], limit: int) -> list[Point]:
    """The latest point of each bucket, oldest first, at most ``limit``."""
    bounds = regions(now_ms, grid)
    best: dict[tuple[int, int], Point] = {}
    for point in points:
        for index, (start, end) in enumerate(bounds):
            if start <= point.at_ms < end:
                key = (index, point.at_ms // grid[index].bucket_ms)
                held = best.get(key)
                if held is None or held.version < point.version:
                    best[key] = point
                break
    return sorted(best.values(), key=lambda p: (p.version, p.at_ms))[-limit:]


def encode(points: list[Point]) -> str:
    """``event: history`` data: one line of compact JSON."""
    return json.dumps({"points": [p.data() for p in points]}, separators=(",", ":"))


def _grid() -> tuple[tuple[Span, ...], int, int]:
    config = get_config()
    return (
        spans(config["HISTORY_WINDOW"], config["HISTORY_POINTS"]),
        config["HISTORY_POINTS"],
        round(config["HISTORY_WINDOW"] * 1000),
    )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Timeline:
    """A hub's history: the latest point of every bucket of every span, in memory.

    Bounded by the number of buckets (about ``HISTORY_POINTS``), whatever the
    rate of publications; the event's bytes are made once and shared.
    """

    def __init__(self) -> None:
        self.grid, self.limit, self.window_ms = _grid()
        self.loaded = False
        self._buckets: list[dict[int, Point]] = [{} for _ in self.grid]
        self._frame: tuple[str, int] | None = None  # (data, when it was made)

    def add(self, point: Point) -> None:
        for span, buckets in zip(self.grid, self._buckets, strict=True):
            key = point.at_ms // span.bucket_ms
            held = buckets.get(key)
            if held is None or held.version < point.version:
                buckets[key] = point
                self._frame = None
            if len(buckets) > 2 * self.limit:
                self._forget(span, buckets)

    def _forget(self, span: Span, buckets: dict[int, Point]) -> None:
        # Two spans' worth: a span reaches back at most one coarser bucket past
        # its length, and no bucket is ever longer than its span.
        oldest = (_now_ms() - 2 * span.length_ms) // span.bucket_ms
        for key in [key for key in buckets if key < oldest]:
            del buckets[key]

    def points(self, now_ms: int | None = None) -> list[Point]:
        now_ms = _now_ms() if now_ms is None else now_ms
        held = (point for buckets in self._buckets for point in buckets.values())
        return choose(held, now_ms, self.grid, self.limit)

    def data(self) -> str:
        """The history event's data; made again when a point came or time moved
        a bucket of the finest span on."""
        now_ms = _now_ms()
        if self._frame is None or now_ms - self._frame[1] >= self.grid[0].bucket_ms:
            self._frame = (encode(self.points(now_ms)), now_ms)
        return self._frame[0]


# -- the database (on the snapshot worker: graphapp.snapshots.worker) ------------


def record(snapshot: Snapshot) -> None:
    """Keep one snapshot's point (once: another process may record the same
    version). A database that fails costs a point of the chart, not the
    publication: logged, and nothing raised."""
    point = Point.of(snapshot)
    try:
        _insert(point)
    except DatabaseError as exc:
        logger.warning("graphapp: history point not recorded: %s: %s", type(exc).__name__, exc)


def _insert(point: Point) -> None:
    HistoryPoint.objects.bulk_create(
        [
            HistoryPoint(
                version=point.version,
                at_ms=point.at_ms,
                nodes=point.nodes,
                edges=point.edges,
                tiers=point.tiers,
                types=point.types,
            )
        ],
        ignore_conflicts=True,
    )


def load(now_ms: int | None = None, since_ms: int | None = None) -> list[Point]:
    """The chosen points from the database (newer than ``since_ms`` if given):
    one query per span, each returning the latest point of its buckets only."""
    now_ms = _now_ms() if now_ms is None else now_ms
    grid, limit, _ = _grid()
    candidates: list[Point] = []
    for span, (start, end) in zip(grid, regions(now_ms, grid), strict=True):
        bucket = Value(span.bucket_ms, output_field=BigIntegerField())
        rows = (
            HistoryPoint.objects.filter(at_ms__gte=start, at_ms__lt=end)
            .annotate(
                rank=Window(
                    RowNumber(), partition_by=[F("at_ms") / bucket], order_by=F("version").desc()
                )
            )
            .filter(rank=1)
            .values_list("version", "at_ms", "nodes", "edges", "tiers", "types")
        )
        candidates.extend(Point(*row) for row in rows)
    chosen = choose(candidates, now_ms, grid, limit)
    return chosen if since_ms is None else [p for p in chosen if p.at_ms >= since_ms]


_next_prune = 0.0


def prune(using: str = DEFAULT_DB_ALIAS) -> None:
    """Forget points older than the window (at most once a minute per process)."""
    global _next_prune
    if time.monotonic() < _next_prune:
        return
    _next_prune = time.monotonic() + PRUNE_EVERY
    grid, _, window_ms = _grid()
    oldest = _now_ms() - window_ms - grid[-1].bucket_ms
    HistoryPoint.objects.using(using).filter(at_ms__lt=oldest).delete()
