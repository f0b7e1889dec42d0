"""Cross-origin reads of the stream and the JSON API, for the origins in
``CORS_ORIGINS`` (empty by default: this site's pages only).

An allowed origin gets ``Access-Control-Allow-Origin`` (its own, never ``*``)
with ``Access-Control-Allow-Credentials``, so that an ``EventSource`` opened
``withCredentials`` or a ``fetch`` with ``credentials: "include"`` sends its
cookies; a preflight (OPTIONS) is answered here, before the view. Every answer
says ``Vary: Origin`` once origins are configured, so that no cache hands one
origin's answer to another.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext

from graphapp.conf import get_config

Answer = TypeVar("Answer", bound=HttpResponseBase)
View = Callable[[HttpRequest], Coroutine[Any, Any, Answer]]

#: What a cross-origin request may send beyond the safelisted headers.
ALLOWED_HEADERS: Final = "Authorization, Content-Type, X-CSRFToken, Last-Event-ID"
#: Seconds a browser may keep a preflight's answer.
PREFLIGHT_MAX_AGE: Final = 600


def allowed(origin: str | None) -> bool:
    """Whether a page of ``origin`` may read graphapp's answers."""
    return origin is not None and origin in get_config()["CORS_ORIGINS"]


def headers(origin: str | None) -> dict[str, str]:
    """The CORS headers of an answer to a request from ``origin``, beside
    ``Vary: Origin`` (which :func:`varies` says; for an ASGI application that
    sends its headers itself)."""
    if not allowed(origin):
        return {}
    return {"Access-Control-Allow-Origin": str(origin), "Access-Control-Allow-Credentials": "true"}


def varies() -> bool:
    """Whether answers depend on the ``Origin`` (some origins are listed)."""
    return bool(get_config()["CORS_ORIGINS"])


def add_headers(response: HttpResponseBase, origin: str | None) -> None:
    """The CORS headers of an answer to a request from ``origin``."""
    if not varies():
        return
    patch_vary_headers(response, ["Origin"])
    for name, value in headers(origin).items():
        response[name] = value


def preflight(origin: str | None, methods: tuple[str, ...]) -> HttpResponse:
    """The answer to a preflight for a view that takes ``methods``."""
    if not allowed(origin):
        answer: HttpResponse = JsonResponse(
            {"error": gettext("Pages of this origin may not read this site (CORS_ORIGINS).")},
            status=403,
        )
    else:
        answer = HttpResponse(status=204)
        answer["Access-Control-Allow-Methods"] = ", ".join(methods)
        answer["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        answer["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    add_headers(answer, origin)
    return answer


def cross_origin(*methods: str) -> Callable[[View[Answer]], View[Answer | HttpResponse]]:
    """An async view that takes ``methods`` readable from ``CORS_ORIGINS``:
    preflights answered, every answer with its CORS headers."""

    def decorate(view: View[Answer]) -> View[Answer | HttpResponse]:
        @functools.wraps(view)
        async def checked(request: HttpRequest) -> Answer | HttpResponse:
            origin = request.headers.get("Origin")
            if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
                return preflight(origin, methods)
            response = await view(request)
            add_headers(response, origin)
            return response

        return checked

    return decorate
