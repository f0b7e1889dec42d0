"""graphsite's settings for the test suite: a SQLite test database in a file
(the publisher's thread must see what the tests commit)."""

import os
import tempfile

from graphsite.settings import *  # noqa: F403
from graphsite.settings import DATABASES

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"graphapp-test-{os.getpid()}.sqlite3")
    }
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
