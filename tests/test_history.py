"""History: the bounded choice of points, the hub's memory of it, the table and the API."""

from __future__ import annotations

import datetime
import itertools
import random
from typing import Any

import pytest
from django.test import Client, override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from graphapp import history
from graphapp.history import Point, Span, Timeline, choose, regions, spans
from graphapp.models import HistoryPoint
from graphapp.types import Snapshot

DAY_MS = 86_400_000
NOW = 1_800_000_000_000  # a fixed "now", ms since the epoch
GRID = spans(86_400, 300)


def point(version: int, at_ms: int, nodes: int | None = None) -> Point:
    nodes = version if nodes is None else nodes
    return Point(version, at_ms, nodes, 0, {"HOT": nodes, "WARM": 0, "COLD": 0}, {"FACT": nodes})


def snapshot(version: int, at: datetime.datetime, nodes: int) -> Snapshot:
    return {
        "type": "update",
        "version": version,
        "at": at.isoformat(timespec="milliseconds"),
        "nodes": nodes,
        "edges": 2 * nodes,
        "avg_entanglement": 0.5,
        "tiers": {"HOT": nodes, "WARM": 0, "COLD": 0},
        "types": {"FACT": nodes, "CONCEPT": 0, "CODE": 0, "DREAM": 0, "ENTITY": 0},
    }


def test_spans_are_finer_for_recent_minutes_and_each_bucket_divides_the_next() -> None:
    assert [span.length_ms for span in GRID] == [600_000, 3_600_000, DAY_MS]
    buckets = [span.bucket_ms for span in GRID]
    assert buckets == sorted(buckets)
    assert all(coarse % fine == 0 for fine, coarse in itertools.pairwise(buckets))
    # A short window is one span; a week keeps four.
    assert [s.length_ms for s in spans(300, 300)] == [300_000]
    assert len(spans(30 * 86_400, 300)) == 4


def test_regions_tile_the_window_without_overlap_on_their_own_grids() -> None:
    bounds = regions(NOW, GRID)
    for (start, _), (_, end) in itertools.pairwise(bounds):
        assert end == start  # each coarser span ends where the finer one begins
    for span, (start, end) in zip(GRID, bounds, strict=True):
        assert start % span.bucket_ms == 0
        assert end == bounds[0][1] or end % span.bucket_ms == 0
    assert bounds[-1][0] <= NOW - DAY_MS


def test_a_day_of_points_every_second_is_chosen_down_to_the_limit() -> None:
    every_second = [point(v, NOW - DAY_MS + v * 1000) for v in range(DAY_MS // 1000 + 1)]
    chosen = choose(every_second, NOW, GRID, 300)
    assert 250 <= len(chosen) <= 300
    assert chosen == sorted(chosen)  # oldest first
    assert chosen[-1] == every_second[-1]  # the newest point is always there
    # The last ten minutes keep about a hundred points, the older hours fewer.
    recent = [p for p in chosen if p.at_ms >= NOW - 600_000]
    older = [p for p in chosen if p.at_ms < NOW - 3_600_000]
    assert len(recent) >= 90
    assert len(older) <= 130  # the hour's span reaches back one coarse bucket
    # Each chosen point is the latest of its bucket: no later point shares it.
    chosen_versions = {p.version for p in chosen}
    for span, (start, end) in zip(GRID, regions(NOW, GRID), strict=True):
        for p in chosen:
            if start <= p.at_ms < end:
                later = [
                    q
                    for q in every_second
                    if start <= q.at_ms < end
                    and q.at_ms // span.bucket_ms == p.at_ms // span.bucket_ms
                    and q.version > p.version
                ]
                assert not later, (p, later[:1])
    assert len(chosen_versions) == len(chosen)


def test_points_older_than_the_window_are_left_out() -> None:
    old = point(1, NOW - 2 * DAY_MS)
    new = point(2, NOW - 1000)
    assert choose([old, new], NOW, GRID, 300) == [new]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(-DAY_MS - 10**7, 10**7)),
        max_size=300,
    )
)
def test_a_hubs_timeline_chooses_what_the_whole_list_would(raw: list[tuple[int, int]]) -> None:
    # The memory keeps only the latest point of each bucket of each span: the
    # choice made from it is the one made from every point ever added.
    points = [point(version, NOW + offset) for version, offset in dict(raw).items()]
    timeline = Timeline()
    for p in random.sample(points, len(points)):
        timeline.add(p)
    assert timeline.points(NOW) == choose(points, NOW, timeline.grid, timeline.limit)


def test_a_timeline_stays_bounded_however_many_points_come() -> None:
    timeline = Timeline()
    now = history._now_ms()
    for version in range(50_000):
        timeline.add(point(version, now - DAY_MS + version * 1_700))
    assert all(len(buckets) <= 2 * timeline.limit + 1 for buckets in timeline._buckets)
    assert len(timeline.points()) <= timeline.limit


def test_a_timeline_shares_one_encoding_until_a_point_comes() -> None:
    timeline = Timeline()
    timeline.add(point(1, history._now_ms()))
    first = timeline.data()
    assert timeline.data() is first
    timeline.add(point(2, history._now_ms()))
    assert timeline.data() is not first


def test_point_round_trips_a_snapshots_time_to_the_millisecond() -> None:
    at = datetime.datetime(2026, 12, 1, 9, 30, 15, 123_000, tzinfo=datetime.UTC)
    data = Point.of(snapshot(7, at, 3)).data()
    assert data == {
        "version": 7,
        "at": "2026-12-01T09:30:15.123+00:00",
        "nodes": 3,
        "edges": 6,
        "tiers": {"HOT": 3, "WARM": 0, "COLD": 0},
        "types": {"FACT": 3, "CONCEPT": 0, "CODE": 0, "DREAM": 0, "ENTITY": 0},
    }


def test_span_is_a_value() -> None:
    assert Span(1, 1) == Span(1, 1)


# -- the table -----------------------------------------------------------------


def record_day(now: datetime.datetime, count: int) -> list[Snapshot]:
    recorded = []
    for version in range(1, count + 1):
        at = now - datetime.timedelta(seconds=(count - version) * 86_400 / count)
        recorded.append(snapshot(version, at, version % 17))
        history.record(recorded[-1])
    return recorded


@pytest.mark.django_db
def test_the_database_chooses_the_same_points_as_the_whole_list() -> None:
    now = datetime.datetime.now(datetime.UTC)
    recorded = record_day(now, 3_000)
    now_ms = int(now.timestamp() * 1000) + 1
    every = [Point.of(s) for s in recorded]
    loaded = history.load(now_ms)
    assert loaded == choose(every, now_ms, GRID, 300)
    assert 100 <= len(loaded) <= 300


@pytest.mark.django_db
def test_a_version_recorded_twice_is_kept_once() -> None:
    at = datetime.datetime.now(datetime.UTC)
    history.record(snapshot(5, at, 1))
    history.record(snapshot(5, at, 1))  # another process
    assert HistoryPoint.objects.count() == 1


@pytest.mark.django_db
@override_settings(GRAPHAPP={"HISTORY_WINDOW": 600})
def test_pruning_forgets_points_older_than_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.datetime.now(datetime.UTC)
    history.record(snapshot(1, now - datetime.timedelta(hours=2), 1))
    history.record(snapshot(2, now - datetime.timedelta(minutes=5), 2))
    monkeypatch.setattr(history, "_next_prune", 0.0)
    history.prune()
    assert list(HistoryPoint.objects.values_list("version", flat=True)) == [2]


# -- the API --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the worker reads with a connection of its own
def test_the_api_serves_the_points_since_a_moment(client: Client, django_user_model: Any) -> None:
    now = datetime.datetime.now(datetime.UTC)
    record_day(now, 200)
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    everything = client.get("/graph/api/history/").json()["points"]
    assert [p["version"] for p in everything] == [p.version for p in history.load()]
    since = (now - datetime.timedelta(hours=1)).isoformat()
    recent = client.get("/graph/api/history/", {"since": since}).json()["points"]
    assert recent
    assert len(recent) < len(everything)
    assert all(p["at"] >= since[:23] for p in recent)
    assert recent == everything[-len(recent) :]


@pytest.mark.django_db
def test_the_api_answers_bad_queries_with_field_errors(
    client: Client, django_user_model: Any
) -> None:
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    bad = client.get("/graph/api/history/", {"since": "yesterday"})
    assert bad.status_code == 400
    assert list(bad.json()["errors"]) == ["since"]
    unknown = client.get("/graph/api/history/", {"until": "2026-01-01"})
    assert unknown.status_code == 400
    assert "known parameters: since" in unknown.json()["errors"]["until"][0]


@pytest.mark.django_db
def test_the_api_needs_the_view_permission(client: Client) -> None:
    answer = client.get("/graph/api/history/")
    assert answer.status_code == 403
    assert "error" in answer.json()
