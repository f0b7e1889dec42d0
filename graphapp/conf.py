"""graphapp's settings: ``settings.GRAPHAPP`` merged over the defaults below.

Read lazily through :func:`get_config`, cached, and re-read when a test
overrides the setting.
"""

import functools
from typing import Any, Final, TypedDict, cast
from urllib.parse import urlsplit

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from graphapp.exceptions import GraphappConfigError


class Config(TypedDict):
    GROUP: str
    CHANNEL_LAYER: str
    COALESCE_WINDOW: float
    HEARTBEAT: float
    RETRY: int
    CHANGE_LIMIT: int
    SEND_TIMEOUT: float
    VERIFY_INTERVAL: float
    VERIFY_TIMEOUT: float
    REVALIDATE_INTERVAL: float
    VIEW_PERMISSION_CHECK: str
    ADD_PERMISSION_CHECK: str
    AUTHENTICATOR: str
    MAX_CONNECTIONS: int
    MAX_CONNECTIONS_PER_USER: int
    SHUTDOWN_TIMEOUT: float
    RECONNECT_RATE: int
    EDGES: bool
    ENTANGLEMENT: bool
    HISTORY_WINDOW: float
    HISTORY_POINTS: int
    CHANGE_LOG_RETENTION: float
    CHANGE_LOG_LIMIT: int
    MAX_METADATA_BYTES: int
    MAX_LIST_BYTES: int
    MAX_IMPORT_BYTES: int
    TOKEN_MAX_AGE: float
    TOKEN_IN_QUERY: bool
    CORS_ORIGINS: list[str]


DEFAULTS: Final[Config] = {
    # Channel-layer group that carries every snapshot.
    "GROUP": "graphapp.stats",
    # Alias in settings.CHANNEL_LAYERS.
    "CHANNEL_LAYER": "default",
    # Seconds: at most one statistics computation per window; the trailing
    # change of a burst is always published.
    "COALESCE_WINDOW": 0.1,
    # Seconds between comment lines on an idle stream (proxies drop idle
    # connections after 60 s by default).
    "HEARTBEAT": 15.0,
    # Milliseconds a browser waits before reconnecting (the SSE ``retry:`` field).
    "RETRY": 3000,
    # Changes listed one by one in a ``change`` event (about a screenful of a
    # feed); a window with more sends their counts per kind instead.
    "CHANGE_LIMIT": 20,
    # Seconds a send to the channel layer may take before it counts as failed.
    "SEND_TIMEOUT": 5.0,
    # Seconds between checks that a stream's session and permission still hold;
    # a stream whose session expired or whose user lost the permission ends.
    # (A logout, or a change of access made through the ORM, ends its streams
    # at once: graphapp.revoke; this check is for what sends no signal.) A check
    # costs about 2 ms of CPU: 1,000 streams at 300 s, under 1% of a core.
    "REVALIDATE_INTERVAL": 300.0,
    # Seconds between the looks that a process with open streams takes at the
    # graph's version in the database: a version that has not arrived through
    # the layer by the next look is computed there (graphapp.hubs), so streams
    # converge within about two intervals whatever the layer lost.
    "VERIFY_INTERVAL": 1.0,
    # Seconds one of those looks (the version, or the snapshot it calls for)
    # may take before the process tells its streams they are stale.
    "VERIFY_TIMEOUT": 5.0,
    # Dotted paths to callables ``(user) -> bool`` (plain or async).
    "VIEW_PERMISSION_CHECK": "graphapp.permissions.can_view_graph",
    "ADD_PERMISSION_CHECK": "graphapp.permissions.can_add_node",
    # Dotted path to a plain callable ``(scope) -> user``: who opens a stream
    # served in front of Django (graphapp.asgi), run on the check worker with
    # the view check; the default reads the session cookie as Django does.
    "AUTHENTICATOR": "graphapp.asgi.session_user",
    # Open streams per server process; beyond it a new one gets 503 + Retry-After.
    "MAX_CONNECTIONS": 10_000,
    # Open streams per user in one process (tabs of one browser share one
    # stream); beyond it a new one gets 429 + Retry-After.
    "MAX_CONNECTIONS_PER_USER": 20,
    # Seconds a process waits, on SIGTERM or SIGINT, for its streams to end
    # (each is told to reconnect at once) before the server's own shutdown
    # goes on; 0 leaves the signals to the server alone.
    "SHUTDOWN_TIMEOUT": 3.0,
    # Reconnects per second that the streams a process drains are spread to
    # (graphapp.shutdown): below what one restarted process accepts, so that
    # the admin and the API still get their turn while they come back.
    "RECONNECT_RATE": 1000,
    # Whether snapshots count edges, and whether they compute the average
    # entanglement (one pass over the edges per node; at a million nodes the
    # costliest part of a snapshot). Off, the field is null.
    "EDGES": True,
    "ENTANGLEMENT": True,
    # Seconds of history kept (one point per published snapshot, graphapp.history)
    # and sent to every new stream as ``event: history``.
    "HISTORY_WINDOW": 86_400.0,
    # The most points one history event carries: recent minutes keep more
    # detail than older hours (graphapp.history.spans).
    "HISTORY_POINTS": 300,
    # Seconds, and publications, that the change log keeps for streams that
    # reconnect with ``Last-Event-ID`` (graphapp.replay); older ones get a gap.
    "CHANGE_LOG_RETENTION": 3_600.0,
    "CHANGE_LOG_LIMIT": 10_000,
    # Bytes of a node's metadata as compact JSON in UTF-8, wherever it enters
    # (the JSON API, the admin, api.add_node, graph_import). Metadata annotates
    # a node (paths, scores, cycle numbers); a limit well under Django's body
    # limit (DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB) keeps a page of 100 nodes in
    # a few megabytes, not hundreds.
    "MAX_METADATA_BYTES": 65_536,
    # Bytes of one GET /graph/api/nodes/ answer: it lists the nodes that fit and
    # says "truncated". Room for a full page of 100 nodes at the metadata limit.
    "MAX_LIST_BYTES": 8_388_608,
    # Bytes: the largest file graph_import reads (its --max-bytes overrides it
    # for one run). Parsed, a file takes up to about 30 times its size in memory.
    "MAX_IMPORT_BYTES": 16 * 1024 * 1024,
    # Seconds a stream token (POST /graph/api/token/) opens streams for: it
    # need only last until the stream opens, which is then checked as any other.
    "TOKEN_MAX_AGE": 120.0,
    # Whether the stream also takes the token as ?token= (browsers' EventSource
    # sends no headers). Off: servers' access logs write the query string.
    "TOKEN_IN_QUERY": False,
    # Origins ("https://app.example.com") whose pages may read the stream and
    # the JSON API, with credentials (CORS); empty: this site's pages only.
    "CORS_ORIGINS": [],
}

_NUMBERS: Final = (
    "COALESCE_WINDOW",
    "HEARTBEAT",
    "SEND_TIMEOUT",
    "REVALIDATE_INTERVAL",
    "VERIFY_INTERVAL",
    "VERIFY_TIMEOUT",
    "HISTORY_WINDOW",
    "CHANGE_LOG_RETENTION",
    "TOKEN_MAX_AGE",
)
# Room for a list's envelope and a node of a few hundred bytes.
MIN_LIST_BYTES: Final = 1024
_COUNTS: Final = (
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_USER",
    "CHANGE_LIMIT",
    "CHANGE_LOG_LIMIT",
    "RECONNECT_RATE",
    "MAX_IMPORT_BYTES",
    "MAX_METADATA_BYTES",
)
# Enough for each of history's spans (at most four) to keep a few points.
MIN_HISTORY_POINTS: Final = 40
_STRINGS: Final = (
    "GROUP",
    "CHANNEL_LAYER",
    "VIEW_PERMISSION_CHECK",
    "ADD_PERMISSION_CHECK",
    "AUTHENTICATOR",
)


def _at_least(merged: dict[str, Any], key: str, minimum: int) -> None:
    value = merged[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise GraphappConfigError(key, f"must be a whole number >= {minimum}, not {value!r}")


def _validate_origins(origins: object) -> None:
    if not isinstance(origins, list | tuple):
        raise GraphappConfigError("CORS_ORIGINS", f"must be a list of origins, not {origins!r}")
    for origin in origins:
        parts = urlsplit(origin) if isinstance(origin, str) else None
        if (
            parts is None
            or parts.scheme not in {"http", "https"}
            or not parts.hostname
            or origin != f"{parts.scheme}://{parts.netloc}"
        ):
            raise GraphappConfigError(
                "CORS_ORIGINS",
                f"{origin!r} is not an origin: scheme://host[:port], nothing after it",
            )


def _validate(merged: dict[str, Any]) -> None:
    for key in _NUMBERS:
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise GraphappConfigError(key, f"must be a positive number of seconds, not {value!r}")
    retry = merged["RETRY"]
    if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
        raise GraphappConfigError("RETRY", f"must be a whole number of milliseconds, not {retry!r}")
    for key in _COUNTS:
        _at_least(merged, key, 1)
    _at_least(merged, "HISTORY_POINTS", MIN_HISTORY_POINTS)
    _at_least(merged, "MAX_LIST_BYTES", MIN_LIST_BYTES)
    shutdown = merged["SHUTDOWN_TIMEOUT"]
    if isinstance(shutdown, bool) or not isinstance(shutdown, int | float) or shutdown < 0:
        raise GraphappConfigError(
            "SHUTDOWN_TIMEOUT", f"must be a number of seconds >= 0, not {shutdown!r}"
        )
    for key in ("EDGES", "ENTANGLEMENT", "TOKEN_IN_QUERY"):
        if not isinstance(merged[key], bool):
            raise GraphappConfigError(key, f"must be True or False, not {merged[key]!r}")
    if merged["ENTANGLEMENT"] and not merged["EDGES"]:
        raise GraphappConfigError(
            "ENTANGLEMENT", "needs the edges: set it to False too when EDGES is False"
        )
    _validate_origins(merged["CORS_ORIGINS"])
    for key in _STRINGS:
        if not isinstance(merged[key], str) or not merged[key]:
            raise GraphappConfigError(key, f"must be a non-empty string, not {merged[key]!r}")


@functools.cache
def get_config() -> Config:
    """The effective configuration, validated; raises GraphappConfigError."""
    user = getattr(settings, "GRAPHAPP", {})
    if not isinstance(user, dict):
        raise GraphappConfigError("*", f"GRAPHAPP must be a dict, not {type(user).__name__}")
    unknown = sorted(set(user) - set(DEFAULTS))
    if unknown:
        raise GraphappConfigError(unknown[0], f"unknown key; known keys: {', '.join(DEFAULTS)}")
    merged: dict[str, Any] = {**DEFAULTS, **user}
    _validate(merged)
    return cast(Config, merged)


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: object) -> None:
    if setting in {"GRAPHAPP", "CHANNEL_LAYERS"}:
        get_config.cache_clear()
