"""Settings of the benchmark site: graphsite plus the baselines, one server.

graphsite's own settings with DEBUG off (no query log growing in memory), the
bench app (commit times, the floor, the old design) and django-eventstream,
which lives only in the benchmark environment. The harness passes
``DATABASE_URL`` / ``REDIS_URL`` like graphsite reads them.
"""

import json
import os

from graphsite.settings import *  # noqa: F403
from graphsite.settings import DATABASES, INSTALLED_APPS

DEBUG = False
SECRET_KEY = "bench-only-secret-never-deployed"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
# "bench" before "graphapp": its post_save receiver (which notes the commit
# time) is connected first, so its on_commit hook runs before graphapp's.
INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "graphapp"]
INSTALLED_APPS[INSTALLED_APPS.index("channels") + 1 : 0] = [
    "bench.apps.BenchConfig",
    "graphapp",
    "django_eventstream",
]
ROOT_URLCONF = "bench.urls"
ASGI_APPLICATION = "bench.asgi.application"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {"version": 1, "disable_existing_loggers": False}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # What a server on SQLite runs with: readers never block the writer.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
    )

# django-eventstream: one channel, readable with graphapp's view permission.
EVENTSTREAM_CHANNELMANAGER_CLASS = "bench.baselines.PermissionChannelManager"

# For experiments: GRAPHAPP as JSON (e.g. '{"COALESCE_WINDOW": 1.0}').
# The harness's few viewer accounts hold thousands of streams between them.
GRAPHAPP = {"MAX_CONNECTIONS": 20_000, "MAX_CONNECTIONS_PER_USER": 20_000}
GRAPHAPP |= json.loads(os.environ.get("BENCH_GRAPHAPP_JSON", "{}"))
