"""Settings of the daphne processes that the end-to-end tests start.

graphsite's own settings, plus what a test asks for through the environment:
``GRAPHAPP_JSON`` (the GRAPHAPP dict as JSON) and ``TEST_CHANNEL_BACKEND`` (a
dotted path replacing the channel layer's backend).
"""

import json
import os

from graphsite.settings import *  # noqa: F403
from graphsite.settings import CHANNEL_LAYERS

GRAPHAPP = json.loads(os.environ.get("GRAPHAPP_JSON", "{}"))
if os.environ.get("TEST_CHANNEL_BACKEND"):
    CHANNEL_LAYERS["default"] = {"BACKEND": os.environ["TEST_CHANNEL_BACKEND"]}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
