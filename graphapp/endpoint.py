"""What every JSON endpoint does at its door: the method, the CSRF check, the
body, and every failure answered in JSON.

Left to Django, the API would answer some failures with HTML pages (a traceback
under DEBUG): a multipart or form body that the CSRF middleware parses before
the view (more than 1,000 fields, a charset other than UTF-8, a multipart body
the view can then no longer read), a method it does not take, a database that
is locked, read-only or gone. :func:`json_endpoint` makes the CSRF check itself,
without parsing a form, and maps what fails to JSON: the mapping of database
failures is :func:`database_failed`, for any view that wants the same answer.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Coroutine
from typing import Any, Final

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig
from django.db import DatabaseError, InterfaceError, InternalError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict, UnreadablePostError
from django.http.request import RawPostDataException
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt

from graphapp import cors
from graphapp.conf import get_config
from graphapp.forms import FieldErrors, PayloadError, parse_json

logger = logging.getLogger(__name__)

AsyncView = Callable[[HttpRequest], Coroutine[Any, Any, HttpResponse]]

JSON_TYPES: Final = frozenset({"application/json", "text/json"})
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# A database that may come back by itself (locked, read-only, unreachable, a
# dead connection, a standby that refuses writes): 503, try again. Any other
# DatabaseError (an integrity or programming error) will not go away by waiting.
TRANSIENT: Final = (OperationalError, InterfaceError, InternalError)


def error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


class BodyTooLarge(Exception):
    """The body is over DATA_UPLOAD_MAX_MEMORY_SIZE: answered 413, as graphapp.bodylimit
    answers one it refuses before Django reads it."""


def retry_after() -> int:
    """Seconds to tell a client to wait: at least a browser's reconnection delay."""
    return max(1, math.ceil(get_config()["RETRY"] / 1000))


def database_failed(exc: DatabaseError | InterfaceError, request: HttpRequest) -> JsonResponse:
    """The answer to a request that the database failed: 503 with ``Retry-After``
    when it may pass, 500 otherwise; logged with the exception's type either way."""
    if isinstance(exc, TRANSIENT):
        logger.warning(
            "%s %s: database unavailable (%s: %s)",
            request.method,
            request.path,
            type(exc).__name__,
            exc,
        )
        answer = error(gettext("The database is unavailable; try again shortly."), 503)
        answer["Retry-After"] = str(retry_after())
        return answer
    logger.error("%s %s: database error", request.method, request.path, exc_info=exc)
    return error(gettext("The database refused the request."), 500)


def not_allowed(request: HttpRequest, methods: tuple[str, ...]) -> JsonResponse:
    message = gettext("Method %(method)s is not allowed here; allowed: %(allowed)s.") % {
        "method": request.method,
        "allowed": ", ".join(methods),
    }
    answer = error(message, 405)
    answer["Allow"] = ", ".join(methods)
    return answer


def _checked_view(request: HttpRequest) -> HttpResponse:
    """What the CSRF check is told it guards (not exempt); never called."""
    raise AssertionError("only the CSRF middleware's process_view is used")


def csrf_refusal(request: HttpRequest) -> JsonResponse | None:
    """Django's CSRF check with the token from the ``X-CSRFToken`` header, or
    None when it passes.

    The JSON API reads no form, so the check must not parse one: given an empty
    ``POST``, Django's middleware takes the header, and its refusal (an HTML page)
    becomes JSON. The reason is in the ``django.security.csrf`` log.
    """
    request.POST = QueryDict()
    refused = CsrfViewMiddleware(_checked_view).process_view(request, _checked_view, (), {})
    if refused is None:
        return None
    message = gettext(
        "CSRF verification failed: send the csrftoken cookie's value in the "
        "X-CSRFToken header, from a page of this site."
    )
    return error(message, 403)


def read_body(request: HttpRequest) -> bytes:
    """The body, whatever its content type; raises BodyTooLarge, or PayloadError
    when it cannot be read or declares a charset other than UTF-8."""
    charset = request.content_params.get("charset", "utf-8") if request.content_params else "utf-8"
    if charset.lower().replace("_", "-") not in {"utf-8", "utf8"}:
        message = gettext("The body must be JSON in UTF-8, not %(charset)s.")
        raise PayloadError({"__all__": [message % {"charset": charset}]})
    try:
        return request.body
    except RequestDataTooBig as exc:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = gettext(
            "The request body is larger than %(limit)s bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)."
        ) % {"limit": f"{limit:,}"}
        raise BodyTooLarge(message) from exc
    except (RawPostDataException, UnreadablePostError) as exc:
        message = gettext("The request body could not be read: %(problem)s.") % {"problem": exc}
        raise PayloadError({"__all__": [message]}) from exc


def read_json(request: HttpRequest) -> Any:
    """The body parsed as strict JSON (:func:`~graphapp.forms.parse_json`); raises
    PayloadError, which says what the API reads when the body was sent as another type."""
    body = read_body(request)
    try:
        return parse_json(body)
    except PayloadError as exc:
        if request.content_type in JSON_TYPES:
            raise
        hint = gettext("The API reads JSON (Content-Type: application/json), not %(type)s.")
        kind = request.content_type or gettext("a body without a type")
        problems = [str(problem) for problem in exc.errors.get(NON_FIELD_ERRORS, ())]
        errors: FieldErrors = {NON_FIELD_ERRORS: [*problems, hint % {"type": kind}]}
        raise PayloadError(errors) from exc


def json_endpoint(*methods: str) -> Callable[[AsyncView], AsyncView]:
    """An async view of the JSON API that takes ``methods``, checks CSRF on the
    others than GET and HEAD, and answers its failures in JSON: 405, 403, 400 for
    a body (:class:`~graphapp.forms.PayloadError`), 413 for one too large, 503 for
    a database that fails."""

    def decorate(view: AsyncView) -> AsyncView:
        @functools.wraps(view)
        async def endpoint(request: HttpRequest) -> HttpResponse:
            if request.method not in methods:
                return not_allowed(request, methods)
            try:
                if request.method not in SAFE_METHODS:
                    refused = await sync_to_async(csrf_refusal)(request)
                    if refused is not None:
                        return refused
                return await view(request)
            except PayloadError as exc:
                return JsonResponse({"errors": exc.errors}, status=400)
            except BodyTooLarge as exc:
                return error(str(exc), 413)
            except (DatabaseError, InterfaceError) as exc:
                return database_failed(exc, request)

        # The middleware's check would parse a form body before the view: the
        # endpoint makes it itself (csrf_refusal).
        return csrf_exempt(cors.cross_origin(*methods)(endpoint))

    return decorate
