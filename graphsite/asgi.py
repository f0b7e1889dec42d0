"""ASGI entry point of graphsite, served by daphne (or any ASGI server).

With DEBUG on, static files (the admin's CSS, graphapp's JS) are served by
Django's staticfiles handler, as ``runserver`` does; in production put them
behind the web server or a CDN after ``collectstatic``.
"""

import os

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphsite.settings")

django_application = get_asgi_application()
application = ASGIStaticFilesHandler(django_application) if settings.DEBUG else django_application
