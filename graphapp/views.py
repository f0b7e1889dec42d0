"""The SSE stream, the live page, and the operators' views (health, metrics).

The JSON API is graphapp.jsonapi."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
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

from graphapp import shutdown, snapshots, tokens
from graphapp.access import Admission, check_stream, check_token
from graphapp.conf import get_config
from graphapp.cors import cross_origin
from graphapp.endpoint import AsyncView, json_endpoint
from graphapp.hubs import current_hub
from graphapp.jsonapi import forbidden, unauthorized
from graphapp.limits import Slot, StreamRefused, stream_limits
from graphapp.permissions import check_permission
from graphapp.publish import publisher
from graphapp.replay import parse_last_event_id
from graphapp.revoke import session_digest
from graphapp.streaming import event_stream
from graphapp.transport import channel_layer
from graphapp.wire import reconnect_frame

logger = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream; charset=utf-8"


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


def _only(frame: bytes) -> HttpResponse:
    """A stream that is its one last event: the client comes back after its ``retry:``.

    An EventSource reconnects after a stream that ends, but stops for good on
    an error status: a 503 here would end every standard client.
    """
    response = HttpResponse(frame, content_type=EVENT_STREAM)
    response["Cache-Control"] = "no-cache"
    return response


def _come_back_soon() -> HttpResponse:
    """A stream asked for while this process shuts down: its final event alone
    (the drain's own clients coming back before the process stops listening)."""
    return _only(shutdown.come_back_frame())


def _come_back_later() -> HttpResponse:
    """A stream asked for while the database cannot say who may read it: come
    back within ``RETRY`` ms (spread over the clients, so that they do not all
    return in the same instant when the database does)."""
    retry = get_config()["RETRY"]
    return _only(reconnect_frame(random.randint(retry // 2, retry), "database"))


async def admit(request: HttpRequest) -> Admission | JsonResponse:
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
    only the ``reconnect`` event.
    """
    try:
        admission = await admit(request)
    except DatabaseError as exc:
        logger.warning(
            "graphapp: a stream asked to come back: its access cannot be checked: %s: %s",
            type(exc).__name__,
            exc,
        )
        return _come_back_later()
    if isinstance(admission, JsonResponse):
        return admission
    user, session_key = admission.user, admission.session_key
    if not admission.allowed:
        return forbidden()
    # Anonymous visitors (where the check lets anyone read) all have pk None;
    # they are not one user: each stream counts alone, under MAX_CONNECTIONS.
    key = user.pk if user.is_authenticated else object()
    try:
        slot = stream_limits.acquire(key)
    except StreamRefused as refused:
        if stream_limits.draining:
            return _come_back_soon()
        refusal = JsonResponse({"error": refused.message}, status=refused.status)
        refusal["Retry-After"] = str(refused.retry_after)
        return refusal
    config = get_config()
    response = EventStreamResponse(
        slot,
        streaming_content=event_stream(
            config["RETRY"],
            config["HEARTBEAT"],
            still_allowed=admission.still_allowed(),
            revalidate_every=config["REVALIDATE_INTERVAL"],
            min_interval=config["COALESCE_WINDOW"],
            on_end=slot.release,
            session=session_digest(session_key),
            user=str(user.pk) if user.is_authenticated else "",
            session_key=session_key,
            recheck_alone=admission.user_pk is not None,
            # The header from a browser's own reconnection; the parameter from
            # a client that opens a new EventSource itself (stream.js does).
            last_event_id=parse_last_event_id(
                request.headers.get("Last-Event-ID", request.GET.get("last_event_id"))
            ),
        ),
        content_type=EVENT_STREAM,
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
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
