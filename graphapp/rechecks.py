"""Which streams to check again at once: those of some users, of some sessions, or all.

A change of access (graphapp.revoke) names the users whose streams it may end
(a password changed, a user deactivated or deleted, a permission or group taken
from them), the sessions (deleted rows), or everyone (a group's permissions, a
group or permission deleted: whoever had them). A :class:`Recheck` merges
what a transaction, a coalescing window or a hub's pending pass asks for, and
names at most ``MAX_NAMED`` users and sessions: past that it stands for
everyone, so that neither a message nor a pass grows with a bulk change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, TypeGuard

from graphapp.wire import RECHECK

#: Users, and sessions, one recheck names before it stands for everyone.
MAX_NAMED: Final = 1000


class Recheck:
    """The users (their pks as strings), the sessions (their digests,
    graphapp.revoke.session_digest) or everyone."""

    __slots__ = ("everyone", "sessions", "users")

    def __init__(self) -> None:
        self.users: set[str] = set()
        self.sessions: set[str] = set()
        self.everyone = False

    def __bool__(self) -> bool:
        return self.everyone or bool(self.users or self.sessions)

    def add(
        self, users: Iterable[object] = (), sessions: Iterable[str] = (), everyone: bool = False
    ) -> None:
        if self.everyone:
            return
        if everyone:
            self.everyone = True
            self.users.clear()
            self.sessions.clear()
            return
        self.users.update(str(pk) for pk in users)
        self.sessions.update(digest for digest in sessions if digest)
        if len(self.users) > MAX_NAMED or len(self.sessions) > MAX_NAMED:
            self.add(everyone=True)

    def merge(self, other: Recheck) -> None:
        self.add(other.users, other.sessions, other.everyone)

    def covers(self, user: str, session: str) -> bool:
        """Whether a stream of ``user`` (a pk as a string, "" for none) opened
        with ``session`` (a digest, "" for none) is to be checked again."""
        return (
            self.everyone
            or (bool(user) and user in self.users)
            or (bool(session) and session in self.sessions)
        )

    def message(self) -> dict[str, Any]:
        """The group message (type ``graph.recheck``)."""
        return {
            "type": RECHECK,
            "everyone": self.everyone,
            "users": list(self.users),
            "sessions": list(self.sessions),
        }

    @classmethod
    def parse(cls, message: dict[str, Any]) -> Recheck | None:
        """``message`` as a Recheck, None when it is not a well-formed one (one
        naming more than ``MAX_NAMED`` stands for everyone)."""
        everyone, users, sessions = (
            message.get("everyone"),
            message.get("users"),
            message.get("sessions"),
        )
        if (
            message.get("type") != RECHECK
            or not isinstance(everyone, bool)
            or not _strings(users)
            or not _strings(sessions)
        ):
            return None
        recheck = cls()
        recheck.add(users, sessions, everyone)
        return recheck


def _strings(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
