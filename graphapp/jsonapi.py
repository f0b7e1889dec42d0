"""The JSON API: the snapshot, the history, nodes listed and created.

Every view takes its methods, CSRF check and failures from
:func:`graphapp.endpoint.json_endpoint`. What a response holds is encoded in
the thread that read it from the database, never on the event loop.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Final

from asgiref.sync import sync_to_async
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt

from graphapp import access, history, snapshots, tokens
from graphapp.conf import get_config
from graphapp.endpoint import error, json_endpoint, read_json
from graphapp.forms import (
    MAX_BATCH,
    FieldErrors,
    HistoryQueryForm,
    NodeQueryForm,
    PayloadError,
    node_form,
    node_query,
    parse_query,
)
from graphapp.models import Node, tier_q
from graphapp.permissions import CheckName, load_and_check

JSON: Final = "application/json"
# Rows fetched from the database at a time while a list is encoded: a list
# that stops at MAX_LIST_BYTES leaves the rest of its rows unread.
LIST_CHUNK: Final = 16


async def _allowed(request: HttpRequest, name: CheckName = "VIEW_PERMISSION_CHECK") -> bool:
    return (await load_and_check(request, name))[1]


def forbidden() -> JsonResponse:
    return error(gettext("You do not have permission to view the graph."), 403)


def unauthorized(message: str) -> JsonResponse:
    """401 for a stream token that is expired, tampered with or revoked."""
    answer = error(message, 401)
    answer["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return answer


def node_json(node: Node) -> dict[str, Any]:
    return {
        "id": node.pk,
        "content": node.content,
        "node_type": node.node_type,
        "tier": node.tier.value,
        "momentum": node.momentum,
        "created_at": node.created_at.isoformat(),
        "last_accessed": node.last_accessed.isoformat(),
        "metadata": node.metadata,
    }


def encode(value: Any) -> bytes:
    """JSON as JsonResponse writes it (ASCII, the default separators)."""
    return json.dumps(value).encode()


@json_endpoint("GET")
async def stats(request: HttpRequest) -> HttpResponse:
    """The current snapshot as JSON (the same shape as each event's data)."""
    if not await _allowed(request):
        return forbidden()
    return JsonResponse(await snapshots.worker.run(snapshots.take))


@json_endpoint("GET")
async def history_points(request: HttpRequest) -> HttpResponse:
    """The recorded history as JSON: the points a new stream's ``history``
    event carries, those at or after ``since`` when given."""
    if not await _allowed(request):
        return forbidden()
    query = parse_query(HistoryQueryForm, request.GET)
    if isinstance(query, dict):
        return JsonResponse({"errors": query}, status=400)
    since = query.cleaned_data["since"]
    since_ms = None if since is None else int(since.timestamp() * 1000)
    points = await snapshots.worker.run(functools.partial(history.load, since_ms=since_ms))
    return JsonResponse({"points": [point.data() for point in points]})


def _list_nodes(query: NodeQueryForm) -> bytes:
    """``{"nodes": [...], "truncated": ...}`` as bytes: the nodes asked for, as
    many as fit in MAX_LIST_BYTES; ``truncated`` when one more did not."""
    nodes = Node.objects.order_by("-momentum", "-id")
    if query.cleaned_data["type"]:
        nodes = nodes.filter(node_type=query.cleaned_data["type"])
    if query.cleaned_data["tier"]:
        nodes = nodes.filter(tier_q(query.cleaned_data["tier"]))
    budget = get_config()["MAX_LIST_BYTES"] - len(b'{"nodes": [], "truncated": false}')
    parts: list[bytes] = []
    truncated = False
    limit = query.cleaned_data["limit"] or 10
    for node in nodes[:limit].iterator(chunk_size=LIST_CHUNK):
        part = encode(node_json(node))
        budget -= len(part) + (2 if parts else 0)  # the ", " before it
        if budget < 0:
            truncated = True
            break
        parts.append(part)
    ending = b'], "truncated": true}' if truncated else b'], "truncated": false}'
    return b'{"nodes": [' + b", ".join(parts) + ending


def _create_nodes(request: HttpRequest) -> bytes:
    """Save the body's node or list of them in one transaction; their JSON. Raises PayloadError.

    A list is all or nothing: nodes are saved in order, and if any is invalid the
    transaction is rolled back and every invalid one is reported by its index.
    """
    payload = read_json(request)
    items = payload if isinstance(payload, list) else [payload]
    if not items or len(items) > MAX_BATCH:
        message = gettext("Send one node or a list of 1 to %(most)d nodes.") % {"most": MAX_BATCH}
        raise PayloadError({"__all__": [message]})
    errors: dict[str, FieldErrors] = {}
    created: list[dict[str, Any]] = []
    with transaction.atomic():
        for index, item in enumerate(items):
            form = node_form(item)
            if isinstance(form, dict):
                errors[str(index)] = form
            elif not errors:
                created.append(node_json(form.save()))
        if errors:
            transaction.set_rollback(True)
            raise PayloadError(errors if isinstance(payload, list) else errors["0"])
    return encode({"nodes": created} if isinstance(payload, list) else created[0])


@json_endpoint("GET", "POST")
async def nodes(request: HttpRequest) -> HttpResponse:
    """GET: nodes by momentum, filtered by ``type`` and ``tier``, at most ``limit``
    and at most MAX_LIST_BYTES of them. POST: create a node (a JSON object) or
    several (a list), all or nothing."""
    if request.method == "GET":
        if not await _allowed(request):
            return forbidden()
        query = node_query(request.GET)
        if isinstance(query, dict):
            return JsonResponse({"errors": query}, status=400)
        return HttpResponse(await sync_to_async(_list_nodes)(query), content_type=JSON)
    if not await _allowed(request, "ADD_PERMISSION_CHECK"):
        return error(gettext("You do not have permission to add nodes."), 403)
    created = await sync_to_async(_create_nodes)(request)
    return HttpResponse(created, content_type=JSON, status=201)


def _with_slash(request: HttpRequest) -> str | None:
    """The path with a slash added, when that is an endpoint and this is not."""
    if request.path_info.endswith("/"):
        return None
    try:
        match = resolve(request.path_info + "/")
    except Resolver404:
        return None
    return None if match.func is not_found else request.path + "/"


@csrf_exempt  # a POST to no endpoint gets this 404, not the CSRF check's page
async def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """404 for any path under the API's that is none of its endpoints; a GET of
    an endpoint without its final slash is redirected, as APPEND_SLASH would."""
    with_slash = _with_slash(request)
    if with_slash is None:
        return error(gettext("No such endpoint: %(path)s.") % {"path": request.path}, 404)
    if request.method in ("GET", "HEAD"):
        return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    message = gettext("No such endpoint: %(path)s; the endpoint is %(endpoint)s.")
    return error(message % {"path": request.path, "endpoint": with_slash}, 404)


@json_endpoint("POST")
async def stream_token(request: HttpRequest) -> HttpResponse:
    """A stream token (graphapp.tokens) for the session of a user who may
    read the stream, valid for ``TOKEN_MAX_AGE`` seconds."""
    admission = await access.check_stream(request)
    if not admission.allowed:
        return forbidden()
    if not admission.user.is_authenticated or admission.session_key is None:
        message = gettext("A token is issued to a logged-in session; this request has none.")
        return error(message, 400)
    max_age = get_config()["TOKEN_MAX_AGE"]
    answer = JsonResponse(
        {
            "token": tokens.issue(admission.session_key, str(admission.user.pk)),
            "expires_in": max_age,
        }
    )
    answer["Cache-Control"] = "no-store"
    return answer
