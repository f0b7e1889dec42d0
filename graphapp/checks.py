"""System checks (``manage.py check``) for configurations that cannot work as meant."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.db import DEFAULT_DB_ALIAS, connections

from graphapp import schema
from graphapp.conf import get_config
from graphapp.exceptions import GraphappConfigError
from graphapp.transport import uses_in_memory_layer


def unreachable_reason() -> str:
    """Why changes made outside the server process reach no stream, or ""."""
    if not uses_in_memory_layer():
        return ""
    vendor = connections[DEFAULT_DB_ALIAS].vendor
    if vendor in schema.VENDORS:
        return ""  # every server sees other processes' commits in the graph's version
    return (
        f"Channels' in-memory layer lives in one process and {vendor} keeps no graph "
        "version (graphapp.versions: PostgreSQL and SQLite do): changes made in the shell, "
        "in management commands or in other server processes reach the open streams only "
        "when a server recomputes its snapshot, once every VERIFY_INTERVAL."
    )


def check_cross_process_updates(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        reason = unreachable_reason()
    except GraphappConfigError:
        return []  # check_deployment reports it
    if not reason:
        return []
    return [
        Warning(
            reason,
            hint="Use a shared layer such as channels_redis (graphsite: set REDIS_URL), "
            "or PostgreSQL or SQLite.",
            id="graphapp.W001",
        )
    ]


#: Seconds a shared layer may keep a member that stopped renewing (W004).
GROUP_EXPIRY_AT_MOST = 3600
REDIS_LAYERS = ("channels_redis.core.RedisChannelLayer",)
#: redis-py's first major release whose default 5 s socket time-out cuts the
#: blocking receive of channels-redis' layer short (W005, redis/redis-py#4091).
#: RedisPubSubChannelLayer polls with short reads and is not affected.
REDIS_PY_TOO_NEW = 8


def _redis_layer(alias: str) -> dict[str, Any] | None:
    """The settings of layer ``alias`` when it is a channels-redis RedisChannelLayer."""
    layer: dict[str, Any] = getattr(settings, "CHANNEL_LAYERS", {}).get(alias, {})
    return layer if layer.get("BACKEND") in REDIS_LAYERS else None


def _group_expiry(alias: str) -> int | None:
    """The ``group_expiry`` of a channels-redis layer (its default: a day), else None."""
    layer = _redis_layer(alias)
    if layer is None:
        return None
    expiry = layer.get("CONFIG", {}).get("group_expiry", 86400)
    return expiry if isinstance(expiry, int) else None


def redis_py_version() -> str | None:
    """The version of the installed redis-py, or None when it is not installed."""
    try:
        return importlib.metadata.version("redis")
    except importlib.metadata.PackageNotFoundError:
        return None


def _redis_py_too_new(alias: str) -> str | None:
    """The installed redis-py's version when layer ``alias`` is channels-redis'
    RedisChannelLayer and that version breaks its receive, else None."""
    version = redis_py_version()
    if _redis_layer(alias) is None or version is None:
        return None
    major = version.split(".", 1)[0]
    return version if major.isdigit() and int(major) >= REDIS_PY_TOO_NEW else None


#: SQLite modes whose transactions take the write lock when they begin (W006).
SQLITE_WRITE_FIRST_MODES = ("IMMEDIATE", "EXCLUSIVE")


def sqlite_defers(database: dict[str, Any]) -> bool:
    """Whether ``database`` (one entry of DATABASES) is SQLite opening its
    transactions deferred."""
    if database.get("ENGINE") != "django.db.backends.sqlite3":
        return False
    mode = str(database.get("OPTIONS", {}).get("transaction_mode") or "DEFERRED")
    return mode.upper() not in SQLITE_WRITE_FIRST_MODES


def unchecked_connections(database: dict[str, Any]) -> str:
    """How ``database`` (one entry of DATABASES) keeps connections between
    requests without checking them before use, or "" when it does not."""
    if database.get("CONN_HEALTH_CHECKS") or "sqlite" in str(database.get("ENGINE")):
        return ""  # a file: no server restarts under a kept connection
    if database.get("OPTIONS", {}).get("pool"):
        return "its psycopg pool lends the connections it holds"
    if database.get("CONN_MAX_AGE", 0) != 0:  # None: for ever
        return f"CONN_MAX_AGE={database['CONN_MAX_AGE']} keeps each connection"
    return ""


BUFFERING_MIDDLEWARE = {
    "django.middleware.gzip.GZipMiddleware": "compresses the stream chunk by chunk and "
    "never flushes, so events stall",
}


def check_deployment(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """What stops the stream from working at all: no ASGI, no layer, buffering."""
    messages: list[CheckMessage] = []
    if not getattr(settings, "ASGI_APPLICATION", None):
        messages.append(
            Error(
                "ASGI_APPLICATION is not set: the event stream needs an ASGI server.",
                hint="Set ASGI_APPLICATION = 'yourproject.asgi.application' and serve it with "
                "daphne or uvicorn.",
                id="graphapp.E001",
            )
        )
    try:
        alias = get_config()["CHANNEL_LAYER"]
    except GraphappConfigError as exc:
        messages.append(Error(str(exc), hint="See graphapp.conf.DEFAULTS.", id="graphapp.E002"))
        return messages
    if alias not in getattr(settings, "CHANNEL_LAYERS", {}):
        messages.append(
            Error(
                f"CHANNEL_LAYERS has no {alias!r} layer: nothing is published.",
                hint="Add channels.layers.InMemoryChannelLayer (one process) or "
                "channels_redis.core.RedisChannelLayer (several).",
                id="graphapp.E003",
            )
        )
    if "daphne" not in settings.INSTALLED_APPS:
        messages.append(
            Warning(
                "'daphne' is not in INSTALLED_APPS: runserver serves WSGI, where the stream "
                "holds a worker thread per client.",
                hint="Put 'daphne' first in INSTALLED_APPS, or serve with an ASGI server.",
                id="graphapp.W002",
            )
        )
    expiry = _group_expiry(alias)
    if expiry is not None and expiry > GROUP_EXPIRY_AT_MOST:
        messages.append(
            Warning(
                f"CHANNEL_LAYERS[{alias!r}] keeps a group member for {expiry} s: a server "
                "process that is killed (SIGKILL, a crash, an OOM kill) stays in graphapp's "
                "group that long, and every publication tries to fill its channel.",
                hint=f"Set CONFIG['group_expiry'] to at most {GROUP_EXPIRY_AT_MOST} (e.g. 120): "
                "graphapp's hubs renew their membership every quarter of it.",
                id="graphapp.W004",
            )
        )
    too_new = _redis_py_too_new(alias)
    if too_new is not None:
        messages.append(
            Warning(
                f"redis-py {too_new} is installed under CHANNEL_LAYERS[{alias!r}]: its default "
                "5 s socket time-out ends the layer's blocking receive whenever the group is "
                "quiet that long (redis/redis-py#4091), so every server process leaves and "
                "joins graphapp's group again and again, and what is published meanwhile "
                "reaches its streams only through their look at the database.",
                hint='Install redis-py below 8: pip install "redis<8" (graphapp[redis] carries '
                "that bound).",
                id="graphapp.W005",
            )
        )
    if sqlite_defers(settings.DATABASES[DEFAULT_DB_ALIAS]):
        messages.append(
            Warning(
                "SQLite opens this project's transactions DEFERRED: one that reads and then "
                "writes fails at once with 'database is locked' (SQLite cannot wait there "
                "without risking a deadlock) whenever another connection writes meanwhile, "
                "and graphapp's worker writes after every publication (history and the "
                "change log).",
                hint='Set DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE": '
                "such a transaction then waits for the lock (up to OPTIONS['timeout']).",
                id="graphapp.W006",
            )
        )
    if kept := unchecked_connections(settings.DATABASES[DEFAULT_DB_ALIAS]):
        messages.append(
            Warning(
                f"The database's connections are not checked before use, and {kept}: "
                "after the database restarts, the first requests fail on the connections "
                "it closed, one failure for each.",
                hint='Set DATABASES["default"]["CONN_HEALTH_CHECKS"] = True (with a pool, '
                "Django then has psycopg_pool check each connection it lends). graphsite sets it.",
                id="graphapp.W007",
            )
        )
    for path in settings.MIDDLEWARE:
        if path in BUFFERING_MIDDLEWARE:
            messages.append(
                Warning(
                    f"{path} {BUFFERING_MIDDLEWARE[path]}.",
                    hint="Remove it, or compress in the web server and exclude text/event-stream.",
                    id="graphapp.W003",
                )
            )
    return messages
