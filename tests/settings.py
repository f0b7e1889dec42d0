"""graphsite's settings for the in-process tests.

The embedded default: a SQLite test database in a file (the publisher's thread
must see what the tests commit) and the in-memory layer. With
``GRAPHAPP_SERVICES=1``: PostgreSQL and a Redis layer under a prefix of its own.
"""

import os
import tempfile
import uuid

import dj_database_url

from graphsite.settings import *  # noqa: F403
from graphsite.settings import DATABASES
from tests import services

if services.enabled():
    DATABASES["default"] = dj_database_url.parse(services.DATABASE_URL)
    # One test database per run: two runs on one PostgreSQL (two checkouts, a
    # developer and CI) must not drop each other's.
    DATABASES["default"]["TEST"] = {"NAME": f"test_graphapp_{os.getpid()}"}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [services.REDIS_URL],
                "prefix": f"graphapp-unit-{uuid.uuid4().hex[:8]}",
                "group_expiry": 120,  # as graphsite's (graphapp.W004)
            },
        }
    }
else:
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"graphapp-test-{os.getpid()}.sqlite3")
    }
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
