"""The baselines served next to graphapp, and the harness's hooks into the server.

Never shipped: these exist so that one server, one client process and one
payload measure graphapp against

* the floor: a bare async Django view yielding pre-encoded bytes from an
  in-process queue (what Django and the ASGI server cost by themselves);
* the old design: one async generator per client that recomputes the
  statistics every 2 s and sends them when they changed;
* django-eventstream, sending the same payload on its one channel.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections, transaction
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from graphapp.hubs import current_hub
from graphapp.models import Node
from graphapp.permissions import check_permission
from graphapp.publish import publisher
from graphapp.stats import compute_stats
from graphapp.wire import HEARTBEAT_FRAME, encode, sse_frame, stats_frame

TOKEN_PREFIX = "bench-token:"
HEARTBEAT = 15.0
OLD_POLL = 2.0

#: Commit time (time.time()) of each node saved with a token as its content.
COMMITS: dict[str, float] = {}
#: The floor's open streams: one queue of pre-encoded frames each.
FLOOR: set[asyncio.Queue[bytes]] = set()
OLD_STREAMS = 0


def note_commit(content: str, using: str | None) -> None:
    """Note when the transaction saving a token node commits (from a post_save receiver)."""
    if content.startswith(TOKEN_PREFIX):
        transaction.on_commit(functools.partial(_committed, content), using=using)


def _committed(content: str) -> None:
    COMMITS[content] = time.time()


@require_GET
def commit_time(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"at": COMMITS.get(request.GET.get("token", ""))})


# -- the floor -----------------------------------------------------------------


async def _floor_stream(queue: asyncio.Queue[bytes]) -> AsyncIterator[bytes]:
    FLOOR.add(queue)
    try:
        yield sse_frame(retry=3000)
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT):
                    frame = await queue.get()
            except TimeoutError:
                frame = HEARTBEAT_FRAME
            yield frame
    finally:
        FLOOR.discard(queue)


@require_GET
async def floor(request: HttpRequest) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        _floor_stream(asyncio.Queue()), content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache"
    return response


# -- the old design ------------------------------------------------------------


def _old_snapshot() -> dict[str, Any]:
    return {"type": "update", **compute_stats()}


async def _old_stream() -> AsyncIterator[bytes]:
    global OLD_STREAMS
    OLD_STREAMS += 1
    last = ""
    idle = 0.0
    try:
        yield sse_frame(retry=3000)
        while True:
            snapshot = await sync_to_async(_old_snapshot)()
            state = json.dumps(snapshot, sort_keys=True)
            if state != last:
                last, idle = state, 0.0
                yield sse_frame(json.dumps(snapshot, separators=(",", ":")), event="stats")
            elif idle >= HEARTBEAT:
                idle = 0.0
                yield HEARTBEAT_FRAME
            await asyncio.sleep(OLD_POLL)
            idle += OLD_POLL
    finally:
        OLD_STREAMS -= 1


@require_GET
async def old_design(request: HttpRequest) -> HttpResponseBase:
    if not await check_permission(await request.auser(), "VIEW_PERMISSION_CHECK"):
        return JsonResponse({"error": "forbidden"}, status=403)
    await sync_to_async(connections.close_all)()
    response = StreamingHttpResponse(_old_stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


# -- django-eventstream --------------------------------------------------------


class PermissionChannelManager:
    """django-eventstream's channel manager with graphapp's permission on its channel."""

    def get_channels_for_request(
        self, request: HttpRequest, view_kwargs: dict[str, Any]
    ) -> set[str]:
        return {"graph"}

    def can_read_channel(self, user: Any, channel: str) -> bool:
        return user is not None and bool(user.has_perm("graphapp.view_node"))

    def is_channel_reliable(self, channel: str) -> bool:
        return False


# -- triggers and counters for the harness --------------------------------------


def _payload() -> tuple[int, str]:
    try:
        snapshot = publisher.snapshot()
        return snapshot["version"], encode(snapshot)
    finally:
        connections.close_all()


@csrf_exempt
@require_POST
async def publish(request: HttpRequest, target: str) -> JsonResponse:
    """Send graphapp's current snapshot to the floor's or django-eventstream's clients."""
    version, data = await sync_to_async(_payload, thread_sensitive=False)()
    if target == "floor":
        frame = stats_frame(version, data)
        started = time.time()
        for queue in FLOOR:
            queue.put_nowait(frame)
    elif target == "eventstream":
        from django_eventstream import send_event

        started = time.time()
        send_event("graph", "stats", data, json_encode=False)
    else:
        return JsonResponse({"error": f"unknown target {target!r}"}, status=404)
    return JsonResponse({"at": started})


def _burst(count: int) -> dict[str, Any]:
    before, published = publisher.snapshots, publisher.published
    started = time.perf_counter()
    try:
        for index in range(count):
            Node.objects.create(
                content=f"burst {index}", node_type="FACT", momentum=(index % 100) / 100
            )
        seconds = time.perf_counter() - started
        publisher.flush(30.0)
        snapshot = compute_stats()
    finally:
        connections.close_all()
    return {
        "seconds": seconds,
        "computations": publisher.snapshots - before,
        "publications": publisher.published - published,
        "final": snapshot,
    }


@csrf_exempt
@require_POST
async def burst(request: HttpRequest) -> JsonResponse:
    """``count`` saves in a loop, each its own transaction, in a worker thread."""
    count = int(request.GET.get("count", "10000"))
    return JsonResponse(await sync_to_async(_burst, thread_sensitive=False)(count))


@require_GET
async def counters(request: HttpRequest) -> JsonResponse:
    hub = current_hub()
    return JsonResponse(
        {
            "pid": os.getpid(),
            "graphapp_streams": len(hub.subscribers) if hub else 0,
            "floor_streams": len(FLOOR),
            "old_streams": OLD_STREAMS,
            "snapshots": publisher.snapshots,
            "published": publisher.published,
        }
    )


_TRACE: list[Any] = []


@require_GET
def trace_memory(request: HttpRequest) -> JsonResponse:
    """With PYTHONTRACEMALLOC set: the first call takes a snapshot, the next the top growth."""
    import gc
    import tracemalloc

    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    if not _TRACE:
        _TRACE.append(snapshot)
        return JsonResponse({"taken": True})
    stats = snapshot.compare_to(_TRACE[0], "traceback" if request.GET.get("tb") else "lineno")
    return JsonResponse({"top": [str(stat) for stat in stats[:25]]})
