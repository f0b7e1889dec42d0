"""The publisher's clocks, each on its own, with the time given by the test."""

import pytest

from graphapp.timers import Backoff, Window


def test_window_lets_the_first_start_go_at_once() -> None:
    assert Window(0.1).wait(now=50.0) == 0.0


def test_window_holds_the_next_start_until_the_window_has_passed() -> None:
    window = Window(0.1)
    window.start(now=50.0)
    assert window.wait(now=50.04) == pytest.approx(0.06)
    assert window.wait(now=50.1) == 0.0
    assert window.wait(now=60.0) == 0.0


def test_backoff_is_not_due_before_a_failure() -> None:
    backoff = Backoff(1.0, 60.0)
    assert backoff.remaining(now=10.0) is None
    assert not backoff.due(now=10.0)


def test_backoff_doubles_from_first_to_last() -> None:
    backoff = Backoff(1.0, 5.0)
    due = [backoff.failed(now=100.0) - 100.0 for _ in range(5)]
    assert due == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff.failures == 5


def test_backoff_is_due_at_its_time_and_overdue_after() -> None:
    backoff = Backoff(1.0, 60.0)
    backoff.failed(now=100.0)
    assert backoff.remaining(now=100.25) == 0.75
    assert not backoff.due(now=100.5)
    assert backoff.due(now=101.0)
    assert backoff.remaining(now=500.0) == 0.0


def test_backoff_starts_again_after_a_success() -> None:
    backoff = Backoff(1.0, 60.0)
    backoff.failed(now=0.0)
    backoff.failed(now=0.0)
    backoff.succeeded()
    assert backoff.remaining(now=0.0) is None
    assert backoff.failed(now=0.0) == 1.0
