"""graphsite's hooks into django-axes, its login throttle: who is trying (the
client's address, through the proxies in front) and what a locked-out login gets."""

import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def client_address(request: HttpRequest) -> str:
    """``AXES_CLIENT_IP_CALLABLE``: the address of the client that tries to log in.

    Each of the ``GRAPHSITE_PROXY_COUNT`` proxies in front appends the address it
    was reached from to ``X-Forwarded-For`` (nginx's ``$proxy_add_x_forwarded_for``),
    so the client's is that many from the right; what stands left of it the
    client wrote itself. A request with fewer entries came past the proxies.
    """
    remote: str = request.META.get("REMOTE_ADDR", "")
    count: int = settings.GRAPHSITE_PROXY_COUNT
    if not count:
        return remote
    header: str = request.META.get("HTTP_X_FORWARDED_FOR", "")
    forwarded = [address.strip() for address in header.split(",") if address.strip()]
    return forwarded[-count] if len(forwarded) >= count else remote


def lockout_response(request: HttpRequest, *args: object) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: 429 and a page that says when to try again.
    Every try during a lockout starts its cool-off again, so the whole cool-off
    is what the client must wait from now."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    context = {"failure_limit": settings.AXES_FAILURE_LIMIT, "minutes": math.ceil(seconds / 60)}
    response = render(request, "graphsite/lockout.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response
