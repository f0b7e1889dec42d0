"""Run a Python module with this process's wall clock shifted: a host whose clock is off.

``python -m tests.shifted_clock SECONDS MODULE [ARGS...]`` runs ``MODULE`` as
``python -m MODULE ARGS...`` would, after shifting ``time.time``,
``time.time_ns`` and ``datetime.datetime.now``/``utcnow``/``today`` by
``SECONDS`` (negative: behind). ``python -m tests.shifted_clock SECONDS -c CODE``
runs ``CODE`` instead (for checking the shift itself).

Only the wall clock moves: ``time.monotonic`` and every timed wait (asyncio,
threading, select) keep the real time. Debian's ``faketime`` shifts those waits
too, which then never return or raise EINVAL: never use it for a Python server.
"""

from __future__ import annotations

import copyreg
import datetime
import runpy
import sys
import time
from typing import Any, cast

_RealDatetime = datetime.datetime


class _RealDatetimeInstances(type):
    # datetime objects made elsewhere (by database drivers, by arithmetic) are
    # of the real class: they must still pass isinstance(x, datetime.datetime).
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, _RealDatetime)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, _RealDatetime)


class _ShiftedDatetime(_RealDatetime, metaclass=_RealDatetimeInstances):
    """datetime.datetime whose "now" follows the shifted time.time.

    Its "now" gives instances of the real class, as everywhere else (sqlite3's
    adapters, for one, go by exact type); the metaclass makes them instances of
    this one too, which the casts say.
    """

    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> _ShiftedDatetime:
        return cast(_ShiftedDatetime, _RealDatetime.fromtimestamp(time.time(), tz))

    @classmethod
    def utcnow(cls) -> _ShiftedDatetime:
        moment = _RealDatetime.fromtimestamp(time.time(), datetime.UTC).replace(tzinfo=None)
        return cast(_ShiftedDatetime, moment)

    @classmethod
    def today(cls) -> _ShiftedDatetime:
        return cast(_ShiftedDatetime, _RealDatetime.fromtimestamp(time.time()))


_ShiftedDatetime.__name__ = _ShiftedDatetime.__qualname__ = "datetime"
_ShiftedDatetime.__module__ = "datetime"


def _reduce_real(value: datetime.datetime) -> tuple[Any, ...]:
    # pickle finds a class by its name, datetime.datetime, which is now the
    # shifted one: the real instances pickle as it (and load as equal values).
    return (_ShiftedDatetime, *value.__reduce__()[1:])


def shift_clock(seconds: float) -> None:
    """Move this process's wall clock by ``seconds`` from now on."""
    real_time, real_time_ns = time.time, time.time_ns
    offset_ns = round(seconds * 1_000_000_000)

    def shifted_time() -> float:
        return real_time() + seconds

    def shifted_time_ns() -> int:
        return real_time_ns() + offset_ns

    time.time = shifted_time
    time.time_ns = shifted_time_ns
    # datetime's C implementation reads the system clock itself, not time.time;
    # modules imported after this (Django, the drivers) see the shifted class.
    vars(datetime)["datetime"] = _ShiftedDatetime
    copyreg.pickle(_RealDatetime, _reduce_real)


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(
            "usage: python -m tests.shifted_clock SECONDS (MODULE | -c CODE) [ARGS...]"
        )
    shift_clock(float(argv[1]))
    if argv[2] == "-c":
        code: dict[str, Any] = {"__name__": "__main__"}
        exec(argv[3], code)
        return
    sys.argv = [argv[2], *argv[3:]]
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv)
