"""A logout ends that session's streams at once, in every process.

Streams check their session and permission every ``REVALIDATE_INTERVAL``; a
logout need not wait for that. Django sends ``user_logged_out`` before it
flushes the session; graphapp then sends ``graph.revoke`` with a digest of the
session key (never the key itself: it is a credential) to its group, and each
process's hub closes the streams opened with that session. Their browsers
reconnect, get 403 and stop. Expiry, a revoked permission or a deleted session
are still found by the periodic check.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.http import HttpRequest

from graphapp import transport
from graphapp.wire import REVOKE

logger = logging.getLogger(__name__)


def session_digest(session_key: str | None) -> str:
    """What identifies a session on the group; "" for none."""
    if not session_key:
        return ""
    return hashlib.sha256(b"graphapp.session:" + session_key.encode()).hexdigest()[:32]


def _logged_out(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    digest = session_digest(getattr(session, "session_key", None))
    if not digest:
        return
    try:
        transport.send_once({"type": REVOKE, "session": digest})
    except Exception as exc:  # noqa: BLE001 - a logout must never fail because of us
        logger.warning(
            "graphapp: logout not sent to the streams (they end at their next check): %s: %s",
            type(exc).__name__,
            exc,
        )


def connect() -> None:
    user_logged_out.connect(_logged_out, dispatch_uid="graphapp.revoke")
