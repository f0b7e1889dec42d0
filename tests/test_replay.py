"""The change log: what a reconnecting stream missed, merged, and the gap once pruned."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings

from graphapp import replay
from graphapp.changes import ChangeBatch, change
from graphapp.models import LoggedChanges


def logged(version: int, *items: dict[str, Any]) -> None:
    replay.record(version, ChangeBatch.of(20, items).encode(version))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0),
        ("42", 42),
        ("9223372036854775806", 9223372036854775806),
        ("-1", replay.UNKNOWN),
        ("4 2", replay.UNKNOWN),
        ("٤٢", replay.UNKNOWN),  # other scripts' digits: not an id graphapp sent
        ("1" * 20, replay.UNKNOWN),
        ("abc", replay.UNKNOWN),
    ],
)
def test_last_event_id_is_a_version_or_unknown(raw: str | None, expected: int | None) -> None:
    assert replay.parse_last_event_id(raw) == expected


@pytest.mark.django_db
def test_the_changes_after_a_version_come_merged_in_order_up_to_the_snapshot() -> None:
    logged(5, change("created", 1, "FACT", "HOT"))
    logged(7, change("tier", 2, "CODE", "COLD", "HOT"))
    logged(9, change("deleted", 3, "DREAM", "WARM"))
    logged(11, change("created", 4, "FACT", "HOT"))
    missed = json.loads(replay.missed(5, 9))
    assert missed == {
        "version": 9,
        "changes": [
            {"kind": "tier", "id": 2, "node_type": "CODE", "tier": "COLD", "from": "HOT"},
            {"kind": "deleted", "id": 3, "node_type": "DREAM", "tier": "WARM"},
        ],
        "summary": {},
    }
    assert replay.missed(11, 11) == ""
    assert replay.missed(9, 10) == ""  # nothing logged in between


@pytest.mark.django_db
def test_two_publications_under_one_version_are_both_replayed() -> None:
    # Two processes can publish different changes under the same snapshot version.
    logged(3, change("created", 1, "FACT", "HOT"))
    logged(3, change("created", 2, "FACT", "HOT"))
    ids = [item["id"] for item in json.loads(replay.missed(2, 3))["changes"]]
    assert ids == [1, 2]


@pytest.mark.django_db
@override_settings(GRAPHAPP={"CHANGE_LIMIT": 3})
def test_more_missed_than_a_screen_come_as_counts() -> None:
    for version in range(1, 11):
        logged(version, change("created", version, "FACT", "HOT"))
    missed = json.loads(replay.missed(0, 10))
    assert missed == {"version": 10, "changes": [], "summary": {"created": 10}}


def prune_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay, "_next_prune", 0.0)
    replay.prune()


@pytest.mark.django_db
@override_settings(GRAPHAPP={"CHANGE_LOG_LIMIT": 2})
def test_past_the_limit_the_log_says_gap_to_a_stream_from_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for version in (2, 4, 6, 8):
        logged(version, change("created", version, "FACT", "HOT"))
    prune_now(monkeypatch)
    assert LoggedChanges.objects.exclude(data="").count() == 2
    assert json.loads(replay.missed(1, 8)) == {
        "version": 8,
        "changes": [],
        "summary": {},
        "gap": True,
    }
    assert json.loads(replay.missed(3, 8))["gap"] is True
    # A stream that saw version 4 (the newest forgotten) missed nothing forgotten.
    assert [c["id"] for c in json.loads(replay.missed(4, 8))["changes"]] == [6, 8]
    # Pruning again keeps one marker, never a pile of them.
    logged(10, change("created", 10, "FACT", "HOT"))
    prune_now(monkeypatch)
    assert LoggedChanges.objects.filter(data="").count() == 1


@pytest.mark.django_db
@override_settings(GRAPHAPP={"CHANGE_LOG_RETENTION": 60})
def test_past_the_retention_the_log_forgets(monkeypatch: pytest.MonkeyPatch) -> None:
    logged(2, change("created", 2, "FACT", "HOT"))
    LoggedChanges.objects.filter(version=2).update(at_ms=replay._now_ms() - 120_000)
    logged(3, change("created", 3, "FACT", "HOT"))
    prune_now(monkeypatch)
    assert json.loads(replay.missed(1, 3))["gap"] is True
    assert [c["id"] for c in json.loads(replay.missed(2, 3))["changes"]] == [3]


@pytest.mark.django_db
def test_an_id_from_ahead_of_the_database_is_a_gap() -> None:
    # A restored database, or an id from another deployment: what the client
    # saw cannot be placed, so it is told changes are not listed.
    assert json.loads(replay.missed(replay.UNKNOWN, 5))["gap"] is True
    assert json.loads(replay.missed(50, 5))["gap"] is True
