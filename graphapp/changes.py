"""What changed, node by node: the facts behind ``event: change``.

A :class:`ChangeBatch` holds the changes of one transaction, of one coalescing
window, or of a slow client's mailbox. It lists at most ``limit`` changes one by
one; past that (a burst, a bulk command) it keeps only counts per kind, so that
it never grows with the size of a burst and a feed shows "+2,000 nodes created"
instead of a wall of lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final, Literal, TypedDict, cast, get_args

ChangeKind = Literal["created", "tier", "deleted", "updated"]
KINDS: Final[tuple[ChangeKind, ...]] = get_args(ChangeKind)


class ChangeData(TypedDict):
    """What a ``change`` event's ``data`` carries: the changes one by one, or a
    summary (counts per kind) when there were more than fit on a screen."""

    version: int
    changes: list[dict[str, Any]]
    summary: dict[str, int]


def change(
    kind: ChangeKind, id: int, node_type: str, tier: str, from_tier: str | None = None
) -> dict[str, Any]:
    """One change as it travels (a plain dict; ``from`` only for a tier change)."""
    item: dict[str, Any] = {"kind": kind, "id": id, "node_type": node_type, "tier": tier}
    if from_tier is not None:
        item["from"] = from_tier
    return item


class ChangeBatch:
    """Changes listed one by one up to ``limit``, then only counted per kind."""

    __slots__ = ("items", "limit", "summary")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: list[dict[str, Any]] = []
        self.summary: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self.items or self.summary)

    def __len__(self) -> int:
        """How many changes this stands for (listed or counted)."""
        return len(self.items) + sum(self.summary.values())

    @property
    def summarised(self) -> bool:
        return bool(self.summary)

    def add(self, item: dict[str, Any]) -> None:
        if self.summary or len(self.items) >= self.limit:
            self._count(item["kind"], 1)
        else:
            self.items.append(item)

    def add_count(self, kind: ChangeKind, count: int) -> None:
        """``count`` changes of ``kind`` not listed one by one (a bulk operation)."""
        if count > 0:
            self._count(kind, count)

    def merge(self, other: ChangeBatch) -> None:
        """Add ``other``'s changes after ours (``other`` is left as it was)."""
        if (
            not self.summary
            and not other.summary
            and len(self.items) + len(other.items) <= (self.limit)
        ):
            self.items.extend(other.items)
            return
        for item in other.items:
            self._count(item["kind"], 1)
        for kind, count in other.summary.items():
            self._count(cast(ChangeKind, kind), count)

    def _count(self, kind: ChangeKind, count: int) -> None:
        # Once anything is only counted, everything is: a feed shows either the
        # lines or the totals of one event, never a misleading mix.
        for listed in self.items:
            self.summary[listed["kind"]] = self.summary.get(listed["kind"], 0) + 1
        self.items = []
        self.summary[kind] = self.summary.get(kind, 0) + count

    def data(self, version: int) -> ChangeData:
        return {"version": version, "changes": list(self.items), "summary": dict(self.summary)}

    def encode(self, version: int) -> str:
        """One line of compact JSON, as a ``change`` event's ``data`` carries it."""
        return json.dumps(self.data(version), separators=(",", ":"))

    @classmethod
    def decode(cls, data: str, limit: int) -> ChangeBatch:
        """The batch that :meth:`encode` wrote; raises ValueError when malformed."""
        parsed = json.loads(data)
        if not isinstance(parsed, dict):
            raise ValueError("a change message is a JSON object")
        changes, summary = parsed.get("changes"), parsed.get("summary")
        if not isinstance(changes, list) or not isinstance(summary, dict):
            raise ValueError("a change message needs a list 'changes' and a dict 'summary'")
        batch = cls(limit)
        for item in changes:
            if not isinstance(item, dict) or item.get("kind") not in KINDS:
                raise ValueError(f"malformed change {item!r}")
            batch.items.append(item)
        for kind, count in summary.items():
            if kind not in KINDS or not isinstance(count, int):
                raise ValueError(f"malformed summary entry {kind!r}: {count!r}")
            batch.summary[kind] = count
        return batch

    @classmethod
    def of(cls, limit: int, items: Iterable[dict[str, Any]] = (), **counts: int) -> ChangeBatch:
        batch = cls(limit)
        for item in items:
            batch.add(item)
        for kind, count in counts.items():
            batch.add_count(cast(ChangeKind, kind), count)
        return batch
