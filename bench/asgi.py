"""ASGI entry point of the benchmark site (graphapp and the baselines on one server).

``application`` is Django's handler alone; ``bounded`` is it behind graphsite's
BodyLimit, as graphsite/asgi.py serves it (scenario 10 compares the two).
"""

import os

from django.core.asgi import get_asgi_application

from graphapp.bodylimit import BodyLimit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

application = get_asgi_application()

bounded = BodyLimit(application, json_prefixes=["/graph/api/"])
