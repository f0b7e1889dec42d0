"""What travels: the snapshot's JSON, the group message, and SSE frames.

Each is made once per publication and shared: the publisher encodes the
snapshot once, every process frames each message once, and every stream sends
the same bytes. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from graphapp.types import ChangesPayload, Snapshot, StatsMessage, Status

STATS: Final = "graph.stats"
REVOKE: Final = "graph.revoke"
RECHECK: Final = "graph.recheck"  # graphapp.rechecks
RECONNECT: Final = "reconnect"  # the event of reconnect_frame()
HEARTBEAT_FRAME: Final = b": heartbeat\n\n"
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")


def encode(snapshot: Snapshot | Status) -> str:
    """One line of compact, valid JSON (NaN and infinities raise ValueError)."""
    return json.dumps(snapshot, separators=(",", ":"), allow_nan=False)


def state_of(snapshot: Snapshot) -> str:
    """The statistics of a snapshot without its version and time, as a comparable string."""
    fields = (
        snapshot["nodes"],
        snapshot["edges"],
        snapshot["avg_entanglement"],
        snapshot["tiers"],
        snapshot["types"],
    )
    return json.dumps(fields, separators=(",", ":"), sort_keys=True, allow_nan=False)


def stats_message(snapshot: Snapshot, changes: str | None = None) -> StatsMessage:
    """The group message of one publication; ``changes`` is the window's change
    event data, already encoded (graphapp.changes)."""
    message: StatsMessage = {
        "type": STATS,
        "version": snapshot["version"],
        "data": encode(snapshot),
        "state": state_of(snapshot),
    }
    if changes is not None:
        message["changes"] = {"version": snapshot["version"], "data": changes}
    return message


def parse_stats(message: dict[str, Any]) -> StatsMessage | None:
    """``message`` as a StatsMessage, or None when it is not a well-formed one."""
    version, data, state = message.get("version"), message.get("data"), message.get("state")
    if (
        message.get("type") != STATS
        or not isinstance(version, int)
        or isinstance(version, bool)
        or not isinstance(data, str)
        or not isinstance(state, str)
    ):
        return None
    parsed: StatsMessage = {"type": STATS, "version": version, "data": data, "state": state}
    changes = message.get("changes")
    if changes is not None:
        if not (
            isinstance(changes, dict)
            and isinstance(changes.get("version"), int)
            and isinstance(changes.get("data"), str)
        ):
            return None
        parsed["changes"] = ChangesPayload(version=changes["version"], data=changes["data"])
    return parsed


def sse_frame(
    data: str | None = None,
    *,
    event: str | None = None,
    id: int | str | None = None,
    retry: int | None = None,
) -> bytes:
    """One Server-Sent Events message; ``data`` may span lines."""
    lines: list[str] = []
    if retry is not None:
        lines.append(f"retry: {retry}")
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    if data is not None:
        # SSE ends a line at CRLF, LF or CR: each becomes its own data line.
        lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(lines) + "\n\n").encode()


def with_retry(frame: bytes, retry: int) -> bytes:
    """``frame`` with a ``retry:`` field (milliseconds) in its first event.

    In a block of its own the field is valid SSE, but httpx-sse then yields an
    empty ``message`` event and sseclient-py drops it: inside an event every
    client reads it. ``frame`` is one made here (it opens with a field, not a
    comment); with nothing to carry it, the field stands alone.
    """
    if not frame:
        return sse_frame(retry=retry)
    if frame.startswith(b":"):
        raise ValueError("a comment cannot carry the retry field")
    return f"retry: {retry}\n".encode() + frame


def stats_frame(version: int, data: str) -> bytes:
    """A snapshot; its version is the SSE id (the database's, so ids increase)."""
    return sse_frame(data, event="stats", id=version)


def change_frame(data: str) -> bytes:
    """Node changes. No id: they belong to the snapshot sent before them, whose
    id the browser keeps as the stream's last event id."""
    return sse_frame(data, event="change")


def history_frame(data: str) -> bytes:
    """Recent snapshots' totals (graphapp.history); no id, like a change."""
    return sse_frame(data, event="history")


def status_frame(status: Status) -> bytes:
    """Whether the process could confirm its snapshot against the database."""
    return sse_frame(encode(status), event="status")


def reconnect_frame(retry: int, reason: str) -> bytes:
    """The last event of a stream its server ends on purpose: come back after
    ``retry`` ms. A named event with data, so every client reads the field and
    none sees an empty message; listeners of other events never see it."""
    data = json.dumps({"reason": reason, "retry": retry}, separators=(",", ":"))
    return sse_frame(data, event=RECONNECT, retry=retry)
