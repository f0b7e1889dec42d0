"""The end-to-end servers' settings (tests/e2e_settings.py) with a project's
own authentication in front of graphapp, chosen by ``TEST_AUTH``:

* ``remote-user``: an SSO proxy's ``X-Remote-User`` header, through a
  ``RemoteUserMiddleware`` subclass and Django's ``RemoteUserBackend``;
* ``service-key``: a middleware that sets ``request.user`` from an
  ``X-Service-Key`` header through a custom backend, without a session.
"""

import os

from django.core.exceptions import ImproperlyConfigured

from tests.e2e_settings import *  # noqa: F403
from tests.e2e_settings import MIDDLEWARE

# Without django-axes' backend: it has no aauthenticate() (django-axes 8.3), which
# the middlewares' async paths call. These projects log in by header, not password.
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]

_AUTH = os.environ.get("TEST_AUTH", "")
_AFTER = MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1
if _AUTH == "remote-user":
    MIDDLEWARE.insert(_AFTER, "tests.auth_site.HeaderRemoteUserMiddleware")
    AUTHENTICATION_BACKENDS = [
        *AUTHENTICATION_BACKENDS,
        "django.contrib.auth.backends.RemoteUserBackend",
    ]
elif _AUTH == "service-key":
    MIDDLEWARE.insert(_AFTER, "tests.auth_site.service_key_middleware")
    AUTHENTICATION_BACKENDS = [*AUTHENTICATION_BACKENDS, "tests.auth_site.ServiceKeyBackend"]
else:
    raise ImproperlyConfigured(f"TEST_AUTH must be remote-user or service-key, not {_AUTH!r}")
