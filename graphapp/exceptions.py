"""Exceptions raised by graphapp."""

from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError


class GraphappConfigError(ImproperlyConfigured):
    """A key of ``settings.GRAPHAPP`` is unknown or has a value of the wrong kind."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"settings.GRAPHAPP[{key!r}]: {problem}")


class DatabaseUnreachable(OperationalError):
    """A database worker's job that was not run: the job before it could not
    reach the database (graphapp.worker)."""
