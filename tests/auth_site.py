"""Authentication the way other projects do it, for the stream's end-to-end tests:
a header-based ``RemoteUserMiddleware`` subclass (an SSO proxy in front), and a
middleware with a custom backend that sets ``request.user`` per request and
never logs in (nothing in the session)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import django
from django.contrib.auth import aauthenticate
from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.middleware import RemoteUserMiddleware
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.decorators import async_only_middleware

#: A service key names its user: ``key-of-<username>`` (a test's stand-in for a key table).
KEY_PREFIX = "key-of-"


class HeaderRemoteUserMiddleware(RemoteUserMiddleware):
    """The user named by the proxy's ``X-Remote-User`` header, logged in.

    Under ASGI, Django 5.2 reads ``META["HTTP_" + header]``; Django 6.0 and
    later add that prefix only to the default ``REMOTE_USER`` and read
    ``META[header]`` for a subclass's own header.
    """

    header = "X_REMOTE_USER" if django.VERSION < (6, 0) else "HTTP_X_REMOTE_USER"


class ServiceKeyBackend(BaseBackend):
    """Users named by a service key; ``get_user`` as a backend must have it."""

    def authenticate(
        self, request: Any, service_key: str | None = None, **kwargs: Any
    ) -> User | None:
        if not service_key or not service_key.startswith(KEY_PREFIX):
            return None
        return User.objects.filter(username=service_key.removeprefix(KEY_PREFIX)).first()

    def get_user(self, user_id: int) -> User | None:
        return User.objects.filter(pk=user_id).first()


@async_only_middleware
def service_key_middleware(
    get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]],
) -> Callable[[HttpRequest], Awaitable[HttpResponseBase]]:
    """``request.user`` from the ``X-Service-Key`` header, for this request alone."""

    async def middleware(request: HttpRequest) -> HttpResponseBase:
        key = request.headers.get("X-Service-Key")
        if key:
            user = await aauthenticate(request, service_key=key)
            if user is not None:
                request.user = user
        return await get_response(request)

    return middleware
