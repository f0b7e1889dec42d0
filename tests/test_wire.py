"""The wire format: the snapshot's JSON, the group message and SSE frames."""

from __future__ import annotations

import json
import math
from typing import Any, cast

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent
from sseclient import SSEClient

from graphapp.types import Snapshot
from graphapp.wire import (
    HEARTBEAT_FRAME,
    change_frame,
    encode,
    parse_stats,
    reconnect_frame,
    sse_frame,
    state_of,
    stats_frame,
    stats_message,
    status_frame,
    with_retry,
)


def httpx_sse_events(body: bytes) -> list[ServerSentEvent]:
    """What httpx-sse yields for ``body``."""
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    return list(EventSource(response).iter_sse())


def sseclient_events(body: bytes) -> list[tuple[str, str, str | None]]:
    """What sseclient-py yields for ``body``: (event, data, retry)."""
    return [(e.event, e.data, e.retry) for e in SSEClient(iter([body])).events()]


def test_sse_frame_writes_retry_id_event_then_data() -> None:
    frame = sse_frame('{"nodes":3}', event="stats", id=42, retry=1500)
    assert frame == b'retry: 1500\nid: 42\nevent: stats\ndata: {"nodes":3}\n\n'


def test_sse_frame_splits_multiline_data_into_one_data_line_each() -> None:
    assert sse_frame("first\nsecond\n\nfourth") == (
        b"data: first\ndata: second\ndata: \ndata: fourth\n\n"
    )


def test_sse_frame_splits_data_on_carriage_returns_too() -> None:
    # SSE ends a line at CR, LF or CRLF: a CR left inside a data line would end
    # it early and the rest would be read as an unknown field and dropped.
    assert sse_frame("one\rtwo\r\nthree") == b"data: one\ndata: two\ndata: three\n\n"


def test_sse_frame_with_only_retry_is_a_retry_hint() -> None:
    assert sse_frame(retry=3000) == b"retry: 3000\n\n"


def test_sse_frame_ends_with_one_blank_line_and_contains_no_other() -> None:
    for frame in (
        sse_frame("x"),
        sse_frame("a\nb", event="stats", id="7"),
        sse_frame(retry=0),
        HEARTBEAT_FRAME,
    ):
        assert frame.endswith(b"\n\n"), frame
        assert b"\n\n" not in frame[:-2], frame


def test_sse_frame_encodes_non_ascii_data_as_utf8() -> None:
    assert sse_frame("caf\u00e9 \U0001f525") == "data: caf\u00e9 \U0001f525\n\n".encode()


def test_stats_frame_carries_the_version_as_id_and_the_stats_event() -> None:
    assert stats_frame(1717171717171, '{"nodes":1,"edges":0}') == (
        b'id: 1717171717171\nevent: stats\ndata: {"nodes":1,"edges":0}\n\n'
    )


def test_with_retry_puts_the_field_into_the_first_event() -> None:
    frames = stats_frame(7, '{"nodes":1}') + status_frame(
        {"state": "stale", "confirmed_at": None, "version": 7}
    )
    assert with_retry(frames, 1500) == b"retry: 1500\n" + frames


def test_a_retried_stats_frame_is_one_stats_event_in_httpx_sse_and_sseclient() -> None:
    # A retry in a block of its own was an empty "message" event first in
    # httpx-sse (json.loads failed on it) and lost in sseclient-py.
    frame = with_retry(stats_frame(7, '{"nodes":1}'), 1500)
    [event] = httpx_sse_events(frame)
    assert (event.event, event.id, event.retry) == ("stats", "7", 1500)
    assert json.loads(event.data) == {"nodes": 1}
    assert sseclient_events(frame) == [("stats", '{"nodes":1}', "1500")]


def test_with_retry_of_nothing_is_the_field_alone_and_a_comment_cannot_carry_it() -> None:
    assert with_retry(b"", 1500) == b"retry: 1500\n\n"
    with pytest.raises(ValueError, match="comment"):
        with_retry(HEARTBEAT_FRAME, 1500)


def test_reconnect_frame_is_a_named_event_carrying_its_retry() -> None:
    frame = reconnect_frame(250, "shutdown")
    assert frame == b'retry: 250\nevent: reconnect\ndata: {"reason":"shutdown","retry":250}\n\n'
    [event] = httpx_sse_events(frame)
    assert (event.event, event.retry, json.loads(event.data)["retry"]) == ("reconnect", 250, 250)
    assert sseclient_events(frame) == [("reconnect", '{"reason":"shutdown","retry":250}', "250")]


def test_change_frame_has_the_change_event_and_no_id_of_its_own() -> None:
    # It belongs to the snapshot before it: the browser keeps that one's id.
    assert change_frame('{"changes":[]}') == b'event: change\ndata: {"changes":[]}\n\n'


def snapshot(**fields: object) -> Snapshot:
    base: dict[str, Any] = {
        "type": "update",
        "nodes": 2,
        "edges": 1,
        "avg_entanglement": 0.5,
        "tiers": {"HOT": 2, "WARM": 0, "COLD": 0},
        "types": {"FACT": 2},
        "version": 7,
        "at": "2026-12-01T10:00:00.000+00:00",
    }
    return cast(Snapshot, base | fields)


def test_encode_refuses_what_is_not_json() -> None:
    # A NaN or an infinity would be "NaN"/"Infinity": invalid JSON that a browser
    # cannot parse, under a live badge.
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="JSON"):
            encode(snapshot(avg_entanglement=bad))


def test_stats_message_carries_the_encoded_snapshot_and_its_changes() -> None:
    message = stats_message(snapshot(), '{"changes":[]}')
    assert message["version"] == 7
    assert json.loads(message["data"])["nodes"] == 2
    assert message["state"] == state_of(snapshot(version=8, at="later"))
    assert message["changes"] == {"version": 7, "data": '{"changes":[]}'}
    assert parse_stats(dict(message)) == message


def test_state_of_differs_when_a_number_does() -> None:
    assert state_of(snapshot()) != state_of(snapshot(edges=2))


@pytest.mark.parametrize(
    "message",
    [
        {"type": "graph.other", "version": 1, "data": "{}", "state": ""},
        {"type": "graph.stats", "version": "1", "data": "{}", "state": ""},
        {"type": "graph.stats", "version": True, "data": "{}", "state": ""},
        {"type": "graph.stats", "version": 1, "data": {}, "state": ""},
        {"type": "graph.stats", "version": 1, "data": "{}"},
        {"type": "graph.stats", "version": 1, "data": "{}", "state": "", "changes": "x"},
        {"type": "graph.stats", "version": 1, "data": "{}", "state": "", "changes": {"data": 1}},
    ],
)
def test_parse_stats_refuses_a_malformed_message(message: dict[str, Any]) -> None:
    assert parse_stats(message) is None


def test_status_frame_is_a_status_event_with_no_id() -> None:
    frame = status_frame({"state": "stale", "confirmed_at": None, "version": 3})
    assert frame == b'event: status\ndata: {"state":"stale","confirmed_at":null,"version":3}\n\n'


def test_heartbeat_is_a_comment() -> None:
    assert HEARTBEAT_FRAME.startswith(b":")
