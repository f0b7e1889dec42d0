"""A change of access ends the streams it affects at once, in every process.

Streams check their session and permission every ``REVALIDATE_INTERVAL``; the
changes below need not wait for that.

* A logout: Django sends ``user_logged_out`` before it flushes the session;
  graphapp sends ``graph.revoke`` with a digest of the session key (never the
  key itself: it is a credential) to its group, and each process's hub closes
  the streams opened with that session.
* A user saved (a password set, ``is_active`` turned off) or deleted; a group
  or permission added to or taken from a user (from either side); a group's
  permissions changed; a group or a permission deleted or renamed; a session
  row deleted (``QuerySet.delete()`` too: Django then sends ``post_delete`` per
  row). Once the transaction commits (a rolled-back one sends nothing),
  graphapp sends ``graph.recheck`` naming the users, the sessions, or everyone
  (graphapp.rechecks), and each process's hub checks those streams again at
  once (graphapp.revalidate): those that may no longer read end, and their
  browsers reconnect, get 403 and stop; the others stream on.

A save only hands its recheck to a thread of this process (:data:`courier`),
which sends what a ``COALESCE_WINDOW`` gathered as one message, through a
transport kept for its life: a save never waits for the layer, and a failing
layer is logged. What sends no signal is still found by the periodic check:
``QuerySet.update()`` and raw SQL, sessions in the cache or in signed cookies,
expiry; and, on the in-memory layer, a change made in another process (the
shell, a command), which reaches no stream by message.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import threading
import time
from collections.abc import Iterable
from importlib import import_module
from typing import Any, Final

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.core.exceptions import FieldDoesNotExist
from django.db import connections
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.http import HttpRequest

from graphapp import transport
from graphapp.commits import PerTransaction
from graphapp.conf import get_config
from graphapp.rechecks import Recheck
from graphapp.wire import REVOKE

logger = logging.getLogger(__name__)

#: What a login saves of a user (update_last_login): no check reads it.
LOGIN_FIELDS: Final = frozenset({"last_login"})


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


class Courier:
    """Sends the rechecks handed to it, from a thread of its own: those of one
    ``COALESCE_WINDOW`` merged into one message (graphapp.rechecks bounds it)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending = Recheck()
        self._sending = False
        self._thread: threading.Thread | None = None

    def ask(self, recheck: Recheck) -> None:
        """Have ``recheck`` sent soon; cheap and never blocks (any thread)."""
        with self._cond:
            self._pending.merge(recheck)
            if self._thread is None or not self._thread.is_alive():
                if self._thread is None:
                    # A shell or a script that saves and exits still sends it.
                    atexit.register(self.wait, 5.0)
                self._thread = threading.Thread(
                    target=self._run, name="graphapp-revoke", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until what was handed over so far is sent (or failed); False on time-out."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._sending, timeout)

    def _run(self) -> None:
        senders = transport.Transports()
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: bool(self._pending))
                    self._sending = True
                try:
                    time.sleep(get_config()["COALESCE_WINDOW"])  # the rest of a storm joins
                    with self._cond:
                        recheck, self._pending = self._pending, Recheck()
                    self._send(senders.current(), recheck)
                finally:
                    with self._cond:
                        self._sending = False
                        self._cond.notify_all()
        finally:
            senders.close()

    @staticmethod
    def _send(sender: transport.Transport, recheck: Recheck) -> None:
        try:
            sent = sender.send(recheck.message())
        except Exception:
            # Unexpected: log it and keep serving; the thread must not die.
            logger.exception("graphapp: a change of access was not sent")
            return
        logger.debug(
            "graphapp: recheck of %s sent: %s",
            "everyone" if recheck.everyone else f"{len(recheck.users)} user(s), "
            f"{len(recheck.sessions)} session(s)",
            sent,
        )
        if not sent:  # the transport logged why
            logger.warning(
                "graphapp: a change of access not sent to the streams "
                "(they end at their next check)"
            )


#: The courier of this process.
courier = Courier()

# One recheck per transaction, sent once it commits.
_hooks = PerTransaction(Recheck, courier.ask)


def _ask(
    using: str, users: Iterable[object] = (), sessions: Iterable[str] = (), everyone: bool = False
) -> None:
    recheck = _hooks.pending(connections[using])
    if recheck is not None:
        recheck.add(users, sessions, everyone)
        return
    recheck = Recheck()  # autocommit: the change is already committed
    recheck.add(users, sessions, everyone)
    courier.ask(recheck)


def _user_saved(
    sender: type[Model],
    instance: Model,
    created: bool,
    using: str,
    update_fields: frozenset[str] | None = None,
    **kwargs: Any,
) -> None:
    if created or (update_fields is not None and update_fields <= LOGIN_FIELDS):
        return
    _ask(using, users=[instance.pk])


def _user_deleted(sender: type[Model], instance: Model, using: str, **kwargs: Any) -> None:
    _ask(using, users=[instance.pk])


def _memberships_changed(
    sender: type[Model],
    instance: Model,
    action: str,
    reverse: bool,
    pk_set: set[Any] | None,
    using: str,
    **kwargs: Any,
) -> None:
    """``user.groups`` or ``user.user_permissions`` changed, from either side."""
    if not action.startswith("post_"):
        return
    if not reverse:
        _ask(using, users=[instance.pk])
    elif pk_set is not None:
        _ask(using, users=pk_set)
    else:  # group.user_set.clear(): whoever was in it
        _ask(using, everyone=True)


def _grants_changed(sender: type[Model], action: str, using: str, **kwargs: Any) -> None:
    """A group's permissions changed, from either side: whoever is in it."""
    if action.startswith("post_"):
        _ask(using, everyone=True)


def _grant_changed(sender: type[Model], using: str, **kwargs: Any) -> None:
    """A group or a permission deleted, or a permission saved (a new codename)."""
    if not kwargs.get("created", False):
        _ask(using, everyone=True)


def _session_deleted(sender: type[Model], instance: Model, using: str, **kwargs: Any) -> None:
    _ask(using, sessions=[session_digest(getattr(instance, "session_key", None))])


def _through(model: type[Model], name: str) -> type[Model] | None:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    through: type[Model] | None = getattr(field.remote_field, "through", None)
    return through


def _session_model() -> type[Model] | None:
    """The model of a database-backed session engine (db, cached_db), else None."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    model_class = getattr(store, "get_model_class", None)
    if model_class is None:
        return None
    try:
        model: type[Model] = model_class()
    except (ImportError, RuntimeError, LookupError) as exc:
        logger.info("graphapp: no session model to watch: %s: %s", type(exc).__name__, exc)
        return None
    return model


def connect() -> None:
    """Connect the receivers (called by the app's ``ready()``)."""
    user_logged_out.connect(_logged_out, dispatch_uid="graphapp.revoke")
    user = get_user_model()
    post_save.connect(_user_saved, sender=user, dispatch_uid="graphapp.revoke.user")
    post_delete.connect(_user_deleted, sender=user, dispatch_uid="graphapp.revoke.user")
    for name in ("groups", "user_permissions"):
        through = _through(user, name)
        if through is not None:
            m2m_changed.connect(
                _memberships_changed, sender=through, dispatch_uid=f"graphapp.revoke.{name}"
            )
    if apps.is_installed("django.contrib.auth"):
        from django.contrib.auth.models import Group, Permission

        m2m_changed.connect(
            _grants_changed,
            sender=Group.permissions.through,
            dispatch_uid="graphapp.revoke.group_permissions",
        )
        for model in (Group, Permission):
            post_delete.connect(_grant_changed, sender=model, dispatch_uid="graphapp.revoke.grant")
        post_save.connect(_grant_changed, sender=Permission, dispatch_uid="graphapp.revoke.grant")
    session = _session_model()
    if session is not None:
        post_delete.connect(_session_deleted, sender=session, dispatch_uid="graphapp.revoke")
