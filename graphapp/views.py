"""The SSE stream, the live page, and the operators' views (health, metrics).

The JSON API is graphapp.jsonapi."""

from __future__ import annotations

import asyncio
import functools
import os
import weakref
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_cookie

from graphapp import snapshots, tokens
from graphapp.access import Admission, check_stream, check_token
from graphapp.admission import EVENT_STREAM, STREAM_HEADERS, admit, stream_body, unchecked
from graphapp.conf import get_config
from graphapp.cors import cross_origin
from graphapp.endpoint import AsyncView, json_endpoint
from graphapp.hubs import current_hub
from graphapp.jsonapi import unauthorized
from graphapp.limits import Slot, stream_limits
from graphapp.permissions import check_permission
from graphapp.publish import publisher
from graphapp.transport import channel_layer


class EventStreamResponse(StreamingHttpResponse):
    """A stream that gives its slot back when the server closes the response.

    The ASGI handler calls ``close()`` even when the body never started (the
    client left at once), which the stream's own ``finally`` cannot cover.
    """

    def __init__(self, slot: Slot, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._slot = slot
        weakref.finalize(self, slot.release)  # the last resort, never the first

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._slot.release()


async def identify(request: HttpRequest) -> Admission | JsonResponse:
    """The stream token the request carries (graphapp.tokens), else the user
    the project's middleware set, else its session; 401 for a bad token."""
    try:
        token = tokens.token_of(request.headers.get("Authorization"), request.GET.get("token"))
        if token is not None:
            return await check_token(token)
    except tokens.InvalidToken as exc:
        return unauthorized(exc.message)
    return await check_stream(request)


@cross_origin("GET")
@require_GET
@vary_on_cookie  # set by the session middleware only when the request's session is read
async def events(request: HttpRequest) -> HttpResponseBase:
    """``text/event-stream`` of ``stats`` events: the latest snapshot, then every update.

    401 for a stream token that is expired, tampered with or revoked; 403
    without the permission; 429 beyond ``MAX_CONNECTIONS_PER_USER`` streams of
    this user, 503 beyond ``MAX_CONNECTIONS`` in this process, both with
    ``Retry-After``; while it shuts down, or while the database cannot be read,
    only the ``reconnect`` event. graphapp.asgi serves the same stream in front
    of Django.
    """
    try:
        admission = await identify(request)
    except DatabaseError as exc:
        return unchecked(exc)
    if isinstance(admission, JsonResponse):
        return admission
    admitted = admit(admission.user, admission.allowed)
    if not isinstance(admitted, Slot):
        return admitted
    body = stream_body(
        admitted,
        admission.user,
        admission.session_key,
        admission.still_allowed(),
        # The header from a browser's own reconnection; the parameter from
        # a client that opens a new EventSource itself (stream.js does).
        request.headers.get("Last-Event-ID", request.GET.get("last_event_id")),
        recheck_alone=admission.user_pk is not None,
    )
    response = EventStreamResponse(admitted, streaming_content=body, content_type=EVENT_STREAM)
    for name, value in STREAM_HEADERS.items():
        response[name] = value
    return response


@login_required
@never_cache
async def live(request: HttpRequest) -> HttpResponse:
    """The live page: totals, tiers and types, fed by the stream."""
    user = await request.auser()  # cached by login_required
    if not await check_permission(user, "VIEW_PERMISSION_CHECK"):
        raise PermissionDenied
    # Resolved here: the template must not load the user from the event loop.
    return render(request, "graphapp/live.html", {"show_admin_link": user.is_staff})


def _database_ok() -> bool:
    try:
        connection.ensure_connection()
    except DatabaseError:
        return False
    return True


def staff_only(view: AsyncView) -> AsyncView:
    """The operators' views (health, metrics): 403 for anyone but staff."""

    @functools.wraps(view)
    async def checked(request: HttpRequest) -> HttpResponse:
        user = await request.auser()
        if not (user.is_authenticated and user.is_staff):
            return JsonResponse({"error": gettext("Staff only.")}, status=403)
        return await view(request)

    return checked


@json_endpoint("GET")
@never_cache
@staff_only
async def health(request: HttpRequest) -> HttpResponse:
    """For operators (staff): this process's streams, publisher and connections."""
    hub = current_hub()
    layer = channel_layer()
    groups = getattr(layer, "groups", None)
    last = publisher.last_published
    status = hub.status if hub is not None and hub.running else None
    return JsonResponse(
        {
            "pid": os.getpid(),
            "streams": len(hub.subscribers) if hub else 0,
            "connections": stream_limits.total,
            "draining": stream_limits.draining,
            # What this process's streams are told (live when it has none).
            "state": status["state"] if status else "live",
            "confirmed_at": status["confirmed_at"] if status else None,
            "version": status["version"] if status else None,
            "subscribed": bool(hub and hub.joined),
            "group_members": len(groups.get(get_config()["GROUP"], ()))
            if isinstance(groups, dict)
            else None,
            "tasks": len(asyncio.all_tasks()),
            "published": publisher.published,
            "publish_failures": publisher.failures,
            "snapshots": snapshots.taken,
            "last_publish": last.isoformat() if last else None,
            "channel_layer": type(layer).__name__ if layer else None,
            "channel_layer_ok": layer is not None and not publisher.layer_failing,
            "database_ok": await sync_to_async(_database_ok)(),
        }
    )


@require_GET
@never_cache
@staff_only
async def metrics(request: HttpRequest) -> HttpResponse:
    """For operators (staff): this process's metrics, for Prometheus to scrape.

    501 when prometheus_client (the ``metrics`` extra) is not installed.
    """
    try:
        from graphapp.metrics import exposition
    except ModuleNotFoundError as exc:
        if exc.name != "prometheus_client":
            raise
        message = "Metrics need prometheus_client: pip install 'graphapp[metrics]'."
        return JsonResponse({"error": message}, status=501)
    body, content_type = exposition(request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)
