"""Type aliases and message shapes shared by graphapp's modules."""

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, NotRequired, TypeAlias, TypedDict

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser


class Snapshot(TypedDict):
    """The statistics of the whole graph, as every event carries them."""

    type: Literal["update"]
    nodes: int
    edges: int | None  # None when GRAPHAPP["EDGES"] is off
    avg_entanglement: float | None  # None when GRAPHAPP["ENTANGLEMENT"] is off
    tiers: dict[str, int]
    types: dict[str, int]
    version: int
    at: str


class Status(TypedDict):
    """What ``event: status`` carries: whether this process could confirm its
    snapshot against the database (``live``) or not (``stale``), and when it
    last could (ISO 8601, None if never)."""

    state: Literal["live", "stale"]
    confirmed_at: str | None
    version: int | None


class ChangesPayload(TypedDict):
    """The node changes of a publication's window: ``data`` is the ``change``
    event's data already encoded (see :class:`graphapp.changes.ChangeBatch`),
    ``version`` the snapshot's."""

    version: int
    data: str


class StatsMessage(TypedDict):
    """What the publisher sends to the channel-layer group (type ``graph.stats``).

    ``version`` is the database's (graphapp.versions), so every process orders
    messages alike. ``data`` is the snapshot already encoded as one line of
    JSON, so that every receiving process frames it without encoding it again; ``state`` identifies
    its statistics without version and time, so that a hub can drop a message
    that would tell its clients nothing new. ``changes``, when the window
    changed nodes, rides along so that the broker carries one message per
    publication; receivers that do not know it ignore it.
    """

    type: Literal["graph.stats"]
    version: int
    data: str
    state: str
    changes: NotRequired[ChangesPayload]


User = AbstractBaseUser | AnonymousUser
PermissionCheck = Callable[[User], bool | Awaitable[bool]]

# ASGI, as django-stubs types Django's handler: what graphapp.bodylimit wraps.
Scope: TypeAlias = dict[str, Any]
Message: TypeAlias = Mapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]
