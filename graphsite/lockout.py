"""The page a login throttled by django-axes gets: 429, with when to try again."""

import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_response(request: HttpRequest, *args: object) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: every try during a lockout starts its cool-off
    again, so the whole cool-off is what the client must wait from now."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    context = {"failure_limit": settings.AXES_FAILURE_LIMIT, "minutes": math.ceil(seconds / 60)}
    response = render(request, "graphsite/lockout.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response
