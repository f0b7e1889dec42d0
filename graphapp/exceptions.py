"""Exceptions raised by graphapp."""

from django.core.exceptions import ImproperlyConfigured


class GraphappConfigError(ImproperlyConfigured):
    """A key of ``settings.GRAPHAPP`` is unknown or has a value of the wrong kind."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"settings.GRAPHAPP[{key!r}]: {problem}")
