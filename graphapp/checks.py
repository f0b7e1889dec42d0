"""System checks (``manage.py check``) for configurations that cannot work as meant."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning
from django.db import DEFAULT_DB_ALIAS, connections

from graphapp.conf import get_config
from graphapp.publish import IN_MEMORY_LAYER


def unreachable_reason() -> str:
    """Why changes made outside the server process reach no stream, or ""."""
    config = get_config()
    layer = getattr(settings, "CHANNEL_LAYERS", {}).get(config["CHANNEL_LAYER"], {})
    if layer.get("BACKEND") != IN_MEMORY_LAYER:
        return ""
    engine = connections[DEFAULT_DB_ALIAS].settings_dict.get("ENGINE", "")
    if engine == "django.db.backends.sqlite3" and config["WATCH_INTERVAL"] > 0:
        return ""  # the server watches SQLite's data_version
    return (
        "Channels' in-memory layer lives in one process and "
        + (
            "GRAPHAPP['WATCH_INTERVAL'] is 0"
            if "sqlite3" in engine
            else "the database is not SQLite"
        )
        + ": changes made in the shell, in management commands or in other server "
        "processes reach no open stream until the server itself publishes again."
    )


def check_cross_process_updates(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    reason = unreachable_reason()
    if not reason:
        return []
    return [
        Warning(
            reason,
            hint="Use a shared layer such as channels_redis (graphsite: set REDIS_URL), "
            "or on SQLite keep WATCH_INTERVAL above 0.",
            id="graphapp.W001",
        )
    ]
