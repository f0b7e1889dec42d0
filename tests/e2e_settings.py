"""Settings of the daphne processes that the end-to-end tests start.

graphsite's own settings, plus what a test asks for through the environment:
``GRAPHAPP_JSON`` (the GRAPHAPP dict as JSON), ``TEST_CHANNEL_BACKEND`` (a
dotted path replacing the channel layer's backend) and ``TEST_REDIS_BACKEND``
(a dotted path replacing the Redis layer's backend, keeping its CONFIG: a
subclass of channels-redis' layer with faults, see tests/layers.py).
"""

import json
import os

from django.core.exceptions import ImproperlyConfigured

from graphsite.settings import *  # noqa: F403
from graphsite.settings import CHANNEL_LAYERS

GRAPHAPP = json.loads(os.environ.get("GRAPHAPP_JSON", "{}"))
if os.environ.get("TEST_CHANNEL_BACKEND"):
    CHANNEL_LAYERS["default"] = {"BACKEND": os.environ["TEST_CHANNEL_BACKEND"]}
if os.environ.get("TEST_REDIS_BACKEND"):
    if "CONFIG" not in CHANNEL_LAYERS["default"]:
        raise ImproperlyConfigured("TEST_REDIS_BACKEND needs REDIS_URL: there is no Redis layer")
    CHANNEL_LAYERS["default"]["BACKEND"] = os.environ["TEST_REDIS_BACKEND"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
