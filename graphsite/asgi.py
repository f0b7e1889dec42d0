"""ASGI entry point of graphsite, served by daphne (or any ASGI server).

The stream (``/graph/events/``) is answered in front of Django, by
graphapp.asgi's EventsRouter: a connect then skips the
middleware chain and costs one trip to a thread, not one per middleware.
Every other URL goes to Django; ``django_application`` is that alone.

With DEBUG on, static files (the admin's CSS, graphapp's JS) are served by
Django's staticfiles handler, as ``runserver`` does; in production put them
behind the web server or a CDN after ``collectstatic``.

Outermost, a body over DATA_UPLOAD_MAX_MEMORY_SIZE gets 413 before Django
reads it (Django would first write it whole to a temporary file, whatever
the URL); the JSON API's in JSON. Under daphne, which reads the body before
it calls the application, ``python -m graphapp.daphne`` applies the same limit
(docs/deployment.md, "Request bodies").
"""

import os

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

from graphapp.bodylimit import BodyLimit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphsite.settings")

django_application = get_asgi_application()

from graphapp.asgi import EventsRouter  # noqa: E402 - needs the app registry, set up just above

application = BodyLimit(
    EventsRouter(
        ASGIStaticFilesHandler(django_application) if settings.DEBUG else django_application
    ),
    json_prefixes=["/graph/api/"],
)
