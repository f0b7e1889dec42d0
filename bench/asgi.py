"""ASGI entry point of the benchmark site (graphapp and the baselines on one server).

``application`` is Django's handler with graphapp's stream answered in front
of it (graphapp.asgi), as graphsite serves it: ``/graph/events/`` is the ASGI
path, ``/bench/view/`` the same stream through the Django view. ``bounded`` is
it behind graphsite's BodyLimit (scenario 10 compares the two).
"""

import os

from django.core.asgi import get_asgi_application

from graphapp.bodylimit import BodyLimit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

django_application = get_asgi_application()

from graphapp.asgi import EventsRouter  # noqa: E402 - needs the app registry, set up just above

application = EventsRouter(django_application)

bounded = BodyLimit(application, json_prefixes=["/graph/api/"])
