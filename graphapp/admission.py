"""Whether a stream opens, and what it is answered instead: one decision for both paths.

The Django view (graphapp.views.events) and the ASGI application in front of
Django (graphapp.asgi) each find the visitor their own way; from there on they
answer alike, through these functions: 403 without the permission, 429/503
with ``Retry-After`` beyond the limits, the ``reconnect`` event alone while the
process shuts down or the database cannot be read, else a slot and the
stream's body.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse

from graphapp import shutdown
from graphapp.conf import get_config
from graphapp.jsonapi import forbidden
from graphapp.limits import Slot, StreamRefused, stream_limits
from graphapp.replay import parse_last_event_id
from graphapp.revoke import session_digest
from graphapp.streaming import event_stream
from graphapp.types import User
from graphapp.wire import reconnect_frame

logger = logging.getLogger(__name__)

EVENT_STREAM: Final = "text/event-stream; charset=utf-8"
#: Every stream's headers beside its type: no cache may keep it, and nginx
#: must pass it on as it comes (it buffers without the second).
STREAM_HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _only(frame: bytes) -> HttpResponse:
    """A stream that is its one last event: the client comes back after its ``retry:``.

    An EventSource reconnects after a stream that ends, but stops for good on
    an error status: a 503 here would end every standard client.
    """
    response = HttpResponse(frame, content_type=EVENT_STREAM)
    response["Cache-Control"] = "no-cache"
    return response


def come_back_soon() -> HttpResponse:
    """A stream asked for while this process shuts down: its final event alone
    (the drain's own clients coming back before the process stops listening)."""
    return _only(shutdown.come_back_frame())


def unchecked(exc: DatabaseError) -> HttpResponse:
    """A stream asked for while the database cannot say who may read it: come
    back within ``RETRY`` ms (spread over the clients, so that they do not all
    return in the same instant when the database does)."""
    logger.warning(
        "graphapp: a stream asked to come back: its access cannot be checked: %s: %s",
        type(exc).__name__,
        exc,
    )
    retry = get_config()["RETRY"]
    return _only(reconnect_frame(random.randint(retry // 2, retry), "database"))


def admit(user: User, allowed: bool) -> Slot | HttpResponse:
    """A slot for ``user``'s stream, or the answer instead (403, 429, 503, the
    come-back event while draining)."""
    if not allowed:
        return forbidden()
    # Anonymous visitors (where the check lets anyone read) all have pk None;
    # they are not one user: each stream counts alone, under MAX_CONNECTIONS.
    key = user.pk if user.is_authenticated else object()
    try:
        return stream_limits.acquire(key)
    except StreamRefused as refused:
        if stream_limits.draining:
            return come_back_soon()
        refusal = JsonResponse({"error": refused.message}, status=refused.status)
        refusal["Retry-After"] = str(refused.retry_after)
        return refusal


def stream_body(
    slot: Slot,
    user: User,
    session_key: str | None,
    still_allowed: Callable[[], Awaitable[bool]],
    last_event_id: str | None,
    *,
    recheck_alone: bool = False,
) -> AsyncIterator[bytes]:
    """The body of ``user``'s admitted stream: revalidated by ``still_allowed()``
    (and at once on a change of the access of ``user`` or ``session_key``), ended
    by a logout of ``session_key``, replaying from ``last_event_id`` (the
    client's header or parameter, unparsed); it gives ``slot`` back when it ends.
    ``recheck_alone``: no session vouches for ``user``, and a change of access
    has ``still_allowed()`` asked too (graphapp.revalidate)."""
    config = get_config()
    return event_stream(
        config["RETRY"],
        config["HEARTBEAT"],
        still_allowed=still_allowed,
        revalidate_every=config["REVALIDATE_INTERVAL"],
        min_interval=config["COALESCE_WINDOW"],
        on_end=slot.release,
        session=session_digest(session_key),
        last_event_id=parse_last_event_id(last_event_id),
        user=str(user.pk) if user.is_authenticated else "",
        session_key=session_key,
        recheck_alone=recheck_alone,
    )
