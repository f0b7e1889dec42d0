"""Which streams a change of access names: merged, bounded, carried as a group message."""

from __future__ import annotations

from typing import Any

import pytest

from graphapp.rechecks import MAX_NAMED, Recheck
from graphapp.wire import RECHECK


def test_recheck_names_users_and_sessions_and_covers_their_streams() -> None:
    recheck = Recheck()
    recheck.add(users=[7], sessions=["abc"])
    assert recheck.covers("7", "")
    assert recheck.covers("", "abc")
    assert not recheck.covers("8", "def")
    assert not recheck.covers("", ""), "an anonymous stream without a session is nobody's"


def test_recheck_of_everyone_covers_every_stream_and_absorbs_names() -> None:
    recheck = Recheck()
    recheck.add(users=[1])
    recheck.add(everyone=True)
    recheck.add(users=[2], sessions=["x"])
    assert recheck.everyone
    assert (recheck.users, recheck.sessions) == (set(), set())
    assert recheck.covers("", "")


@pytest.mark.parametrize("field", ["users", "sessions"])
def test_recheck_naming_more_than_the_bound_stands_for_everyone(field: str) -> None:
    recheck = Recheck()
    recheck.add(**{field: [str(n) for n in range(MAX_NAMED)]})
    assert not recheck.everyone
    recheck.add(**{field: ["one more"]})
    assert recheck.everyone
    assert not recheck.users
    assert not recheck.sessions


def test_recheck_merges_and_survives_its_message() -> None:
    first, second = Recheck(), Recheck()
    first.add(users=[1])
    second.add(sessions=["s"])
    first.merge(second)
    parsed = Recheck.parse(first.message())
    assert parsed is not None
    assert (parsed.users, parsed.sessions, parsed.everyone) == ({"1"}, {"s"}, False)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "graph.stats", "everyone": True, "users": [], "sessions": []},
        {"type": RECHECK, "users": [], "sessions": []},
        {"type": RECHECK, "everyone": "yes", "users": [], "sessions": []},
        {"type": RECHECK, "everyone": False, "users": [1], "sessions": []},
        {"type": RECHECK, "everyone": False, "users": [], "sessions": "abc"},
    ],
)
def test_recheck_parse_refuses_a_malformed_message(message: dict[str, Any]) -> None:
    assert Recheck.parse(message) is None


def test_recheck_parse_of_a_message_naming_too_many_checks_everyone() -> None:
    names = [str(n) for n in range(MAX_NAMED + 1)]
    parsed = Recheck.parse({"type": RECHECK, "everyone": False, "users": names, "sessions": []})
    assert parsed is not None
    assert parsed.everyone
